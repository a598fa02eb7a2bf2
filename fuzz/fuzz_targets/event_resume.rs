//! Where an event stream resumes: `?after=` (and a JSON page's `limit=`) and a
//! reconnecting client's `Last-Event-ID`, all sent by whoever connects. Never
//! a panic; never a negative place; a page of 1 to 5000; a refusal names the
//! parameter at fault; an id the console sent (a sequence number) is where
//! the stream resumes.
//! Input: the query, a 0xff byte, the header's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migctl::web::events::Resume;

fuzz_target!(|data: &[u8]| {
    let (query, header) = match data.iter().position(|&b| b == 0xff) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    match Resume::read(Some(query), header) {
        Ok(r) => {
            assert!(r.after >= 0 && r.stream_after() >= 0, "{r:?}");
            assert!((1..=5000).contains(&r.limit), "{r:?}");
            if let Some(seq) = header
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|h| h.parse::<i64>().ok())
            {
                assert_eq!(r.stream_after(), seq);
            }
        }
        Err(message) => assert!(
            message.contains("after") || message.contains("limit"),
            "{message}"
        ),
    }
});
