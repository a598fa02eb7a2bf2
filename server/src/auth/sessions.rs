//! Sessions at rest: the store keeps a SHA-256 of each session id, never
//! the id itself, so the database (or a copy of it) does not hand out live
//! sessions. The cookie carries the id; every lookup hashes it first.

use sha2::{Digest, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

#[derive(Clone, Debug)]
pub struct HashedIds<S> {
    inner: S,
}

impl<S> HashedIds<S> {
    pub fn new(inner: S) -> Self {
        HashedIds { inner }
    }
}

/// What the store keeps for a session id.
pub fn stored_id(id: &Id) -> Id {
    let digest = Sha256::digest(id.0.to_le_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    Id(i128::from_le_bytes(first))
}

fn hashed(record: &Record) -> Record {
    Record {
        id: stored_id(&record.id),
        ..record.clone()
    }
}

#[async_trait::async_trait]
impl<S: SessionStore + Clone> SessionStore for HashedIds<S> {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..8 {
            let mut stored = hashed(record);
            let wanted = stored.id;
            self.inner.create(&mut stored).await?;
            if stored.id == wanted {
                return Ok(());
            }
            // The stored id was taken (the inner store picked another one):
            // drop that and start again from a new session id.
            self.inner.delete(&stored.id).await?;
            record.id = Id::default();
        }
        Err(session_store::Error::Backend(
            "no free session id after 8 tries".into(),
        ))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.inner.save(&hashed(record)).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self
            .inner
            .load(&stored_id(id))
            .await?
            .map(|stored| Record { id: *id, ..stored }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.delete(&stored_id(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_id_is_not_the_id_and_is_stable() {
        let id = Id::default();
        assert_ne!(stored_id(&id), id);
        assert_eq!(stored_id(&id), stored_id(&id));
        assert_ne!(stored_id(&id), stored_id(&Id::default()));
    }
}
