//! Each operation's live events for its followers (SSE streams): one
//! broadcast channel per operation that has followers, fed by `record` as
//! each event is stored. An event is serialised to JSON once and sent once,
//! whatever the number of followers, and held once in the channel's ring
//! (followers copy its bytes into their streams); a follower that falls
//! more than `CAPACITY` events behind reads the rest from the database,
//! where every event is, so a slow follower costs no memory and loses
//! nothing.

use app::model::StreamEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events an operation's channel holds for its slowest follower.
pub const CAPACITY: usize = 1024;

pub type Live = broadcast::Receiver<Arc<Encoded>>;

/// An event with its JSON, serialised once for all who send it.
#[derive(Debug)]
pub struct Encoded {
    pub event: StreamEvent,
    /// `None` only if the event cannot be written as JSON (it always can:
    /// strings, numbers and a JSON value).
    pub json: Option<String>,
}

impl Encoded {
    pub fn new(event: StreamEvent) -> Arc<Encoded> {
        let json = serde_json::to_string(&event).ok();
        Arc::new(Encoded { event, json })
    }
}

#[derive(Default)]
pub struct Feeds {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<Encoded>>>>,
}

impl Feeds {
    /// Follows `op` from now on: every event stored after this call.
    pub fn follow(&self, op: &str) -> Live {
        let Ok(mut channels) = self.channels.lock() else {
            // A poisoned map: a channel of its own, never fed; the follower
            // then reads the database on its periodic look.
            return broadcast::channel(1).1;
        };
        channels.retain(|_, tx| tx.receiver_count() > 0);
        channels
            .entry(op.to_owned())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Sends a stored event to `op`'s followers, if it has any.
    pub fn publish(&self, op: &str, event: StreamEvent) {
        let Ok(mut channels) = self.channels.lock() else {
            return;
        };
        let Some(tx) = channels.get(op) else {
            return;
        };
        let last = event.is_final();
        if tx.send(Encoded::new(event)).is_err() || last {
            // No followers left, or nothing more will come: the followers
            // still get what the channel holds, then see it closed.
            channels.remove(op);
        }
    }

    /// Operations with a channel (followers, or an event not yet pruned).
    pub fn len(&self) -> usize {
        self.channels.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::{EventKind, EventSource};

    fn event(seq: i64, data: serde_json::Value) -> StreamEvent {
        StreamEvent {
            seq,
            at: "2026-11-24T08:00:00Z".into(),
            kind: if data.get("phase").is_some() {
                EventKind::Phase
            } else {
                EventKind::Log
            },
            source: EventSource::Console,
            data,
        }
    }

    #[tokio::test]
    async fn followers_get_each_event_once_and_the_channel_goes_with_the_last() {
        let feeds = Feeds::default();
        feeds.publish("op-1", event(1, serde_json::json!({"text": "before"})));
        let mut a = feeds.follow("op-1");
        let mut b = feeds.follow("op-1");
        feeds.publish("op-2", event(1, serde_json::json!({"text": "other"})));
        feeds.publish("op-1", event(2, serde_json::json!({"text": "line"})));
        let done = serde_json::json!({"phase": "done", "text": "done"});
        feeds.publish("op-1", event(3, done));
        assert!(feeds.is_empty(), "the channel stays after the last event");
        for rx in [&mut a, &mut b] {
            let two = rx.recv().await.unwrap();
            assert_eq!(two.event.seq, 2);
            let json: serde_json::Value =
                serde_json::from_str(two.json.as_deref().unwrap()).unwrap();
            assert_eq!(json["data"]["text"], "line", "{json}");
            assert_eq!(rx.recv().await.unwrap().event.seq, 3);
            assert!(matches!(
                rx.recv().await,
                Err(broadcast::error::RecvError::Closed)
            ));
        }
    }

    #[tokio::test]
    async fn a_follower_that_falls_behind_is_told_so() {
        let feeds = Feeds::default();
        let mut slow = feeds.follow("op-1");
        for seq in 1..=(CAPACITY as i64 + 10) {
            feeds.publish("op-1", event(seq, serde_json::json!({"text": "x"})));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        drop(slow);
        let _other = feeds.follow("op-9");
        assert_eq!(feeds.len(), 1, "channels without followers are pruned");
    }
}
