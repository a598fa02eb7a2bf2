//! What a form's post answered, kept for the page it redirects to. The
//! redirect carries a random id (`?notice=…`), never the sentence: a link
//! cannot make the console say anything, and only the user the answer was
//! for can read it. Kept in memory for [`KEPT_FOR`], at most [`KEPT`] at
//! once (the oldest go first): a notice is read right after its redirect,
//! and one lost to a restart only leaves the page without its banner.

use app::model::{Notice, SignedIn};
use axum::response::{IntoResponse, Redirect, Response};
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const KEPT: usize = 4096;
pub const KEPT_FOR: Duration = Duration::from_secs(15 * 60);

struct Kept {
    user_id: i64,
    notice: Notice,
    at: Instant,
}

#[derive(Default)]
struct Store {
    by_id: HashMap<String, Kept>,
    /// Ids, oldest first.
    order: VecDeque<String>,
}

#[derive(Default)]
pub struct Notices {
    store: Mutex<Store>,
}

impl Notices {
    /// Keeps `notice` for `user_id` and returns its id.
    pub fn put(&self, user_id: i64, notice: Notice) -> String {
        let id = format!("{:032x}", rand::rng().random::<u128>());
        let Ok(mut store) = self.store.lock() else {
            return id;
        };
        let now = Instant::now();
        while let Some(oldest) = store.order.front() {
            let expired = store
                .by_id
                .get(oldest)
                .is_none_or(|k| now.duration_since(k.at) > KEPT_FOR);
            if !expired && store.order.len() < KEPT {
                break;
            }
            if let Some(gone) = store.order.pop_front() {
                store.by_id.remove(&gone);
            }
        }
        store.order.push_back(id.clone());
        store.by_id.insert(
            id.clone(),
            Kept {
                user_id,
                notice,
                at: now,
            },
        );
        id
    }

    /// The notice `id` if it is `user_id`'s and not expired.
    pub fn get(&self, user_id: i64, id: &str) -> Option<Notice> {
        let store = self.store.lock().ok()?;
        store
            .by_id
            .get(id)
            .filter(|k| k.user_id == user_id && k.at.elapsed() <= KEPT_FOR)
            .map(|k| k.notice.clone())
    }

    /// A redirect to `page` (which may have a query already) showing `notice`.
    pub fn redirect(&self, page: &str, user: &SignedIn, notice: Notice) -> Response {
        let id = self.put(user.user_id, notice);
        let join = if page.contains('?') { '&' } else { '?' };
        Redirect::to(&format!("{page}{join}notice={id}")).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_its_users_only_and_the_store_stays_bounded() {
        let notices = Notices::default();
        let id = notices.put(1, Notice::done("added zed as viewer"));
        assert_eq!(
            notices.get(1, &id).map(|n| n.message),
            Some("added zed as viewer".to_owned())
        );
        assert_eq!(notices.get(2, &id), None, "another user's notice");
        assert_eq!(notices.get(1, "0123"), None, "an id never given");
        for i in 0..KEPT + 10 {
            notices.put(3, Notice::done(format!("{i}")));
        }
        assert_eq!(notices.get(1, &id), None, "the oldest went first");
        let store = notices.store.lock().unwrap();
        assert_eq!(store.by_id.len(), KEPT);
        assert_eq!(store.order.len(), KEPT);
    }
}
