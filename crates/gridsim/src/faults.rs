//! Faults a test can inject into one grid: fail or delay a named command,
//! drop the connection after N bytes of a command's output, refuse new
//! connections. Set through `sim fault …` over SSH or the library.

use grid::dialect::{ErrorCode, Refusal};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultSet {
    /// Command verb (`app start`, `vol read`, …) → the refusal it answers with.
    pub fail: BTreeMap<String, (ErrorCode, String)>,
    /// Command verb → delay before it runs.
    pub delay_ms: BTreeMap<String, u64>,
    /// Command verbs whose reply never ends (a controller that streams for
    /// ever): they write until the client closes the channel.
    pub endless: std::collections::BTreeSet<String>,
    /// Close the SSH connection once a command has written this many bytes.
    pub drop_after_bytes: Option<u64>,
    pub refuse_connections: bool,
    /// `vol write` flips the first byte of what it writes (a silent corruption).
    pub corrupt_writes: bool,
    /// The grid speaks an older dialect: `grid info` says so and what came
    /// later is refused as an old controller would.
    pub dialect: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Faults(Mutex<FaultSet>);

impl Faults {
    pub fn get(&self) -> FaultSet {
        self.0.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn update(&self, f: impl FnOnce(&mut FaultSet)) {
        if let Ok(mut set) = self.0.lock() {
            f(&mut set);
        }
    }

    pub fn failure(&self, verb: &str) -> Option<Refusal> {
        self.get()
            .fail
            .get(verb)
            .map(|(code, msg)| Refusal::new(*code, msg.clone()))
    }

    pub fn delay(&self, verb: &str) -> Option<Duration> {
        self.get()
            .delay_ms
            .get(verb)
            .map(|ms| Duration::from_millis(*ms))
    }

    /// `sim fault …` arguments (after `sim fault`).
    pub fn apply(&self, args: &[String]) -> Result<String, Refusal> {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let usage = "usage: sim fault fail VERB... [--code C] | delay MS VERB... | endless VERB... | drop-after BYTES | refuse on|off | corrupt-writes on|off | dialect N | clear | show";
        match a.as_slice() {
            ["clear"] => self.update(|f| *f = FaultSet::default()),
            ["show"] => {}
            ["refuse", v @ ("on" | "off")] => self.update(|f| f.refuse_connections = *v == "on"),
            ["corrupt-writes", v @ ("on" | "off")] => {
                self.update(|f| f.corrupt_writes = *v == "on")
            }
            ["dialect", n] => {
                let n: u32 = n.parse().map_err(|_| Refusal::bad_request(usage))?;
                if n == 0 || n > grid::dialect::DIALECT_VERSION {
                    return Err(Refusal::bad_request(format!(
                        "dialect {n}: gridsim speaks 1 to {}",
                        grid::dialect::DIALECT_VERSION
                    )));
                }
                self.update(|f| f.dialect = Some(n));
            }
            ["drop-after", n] => {
                let n: u64 = n.parse().map_err(|_| Refusal::bad_request(usage))?;
                self.update(|f| f.drop_after_bytes = Some(n));
            }
            ["endless", verb @ ..] if !verb.is_empty() => {
                let verb = verb.join(" ");
                self.update(|f| {
                    f.endless.insert(verb);
                });
            }
            ["delay", ms, verb @ ..] if !verb.is_empty() => {
                let ms: u64 = ms.parse().map_err(|_| Refusal::bad_request(usage))?;
                let verb = verb.join(" ");
                self.update(|f| {
                    f.delay_ms.insert(verb, ms);
                });
            }
            ["fail", rest @ ..] if !rest.is_empty() => {
                let (verb, code) = match rest {
                    [v @ .., "--code", c] => (
                        v.join(" "),
                        ErrorCode::parse(c).ok_or_else(|| Refusal::bad_request(usage))?,
                    ),
                    v => (v.join(" "), ErrorCode::Internal),
                };
                self.update(|f| {
                    f.fail.insert(
                        verb.clone(),
                        (code, format!("injected failure of `{verb}`")),
                    );
                });
            }
            _ => return Err(Refusal::new(ErrorCode::BadRequest, usage)),
        }
        serde_json::to_string(&self.get())
            .map_err(|e| Refusal::new(ErrorCode::Internal, e.to_string()))
    }
}
