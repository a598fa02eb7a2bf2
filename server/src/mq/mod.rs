//! The demo's HA group (`migctl demo --group`): three apps that serve
//! together — `mq1` (primary at start), `mq2` (backup), `mq3` (monitor) —
//! as a small primary/backup replication ([`node`]) kept by a view service
//! ([`view`]), their writes on their volumes ([`store`]); and a writer
//! that measures what a move costs them ([`writer`]).

pub mod node;
pub mod store;
pub mod view;
pub mod writer;
