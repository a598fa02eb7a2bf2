//! The monitor's view service (in the spirit of the classic primary/backup
//! design): which node is the primary and which the backup, as numbered
//! views. Nodes ping it; it moves to a new view only once the primary has
//! acknowledged the current one — so it never promotes a backup that the
//! primary has not brought up to date — and never hands the primary role
//! to a node that is about to stop.
//!
//! Pure: time comes in as `now`, answers go out as values.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A node is known by its address (its `LISTEN` property): the identity
/// that travels with it from grid to grid.
pub type NodeId = String;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// 0: no view yet.
    pub num: u64,
    pub primary: Option<NodeId>,
    pub backup: Option<NodeId>,
}

impl View {
    fn next(&self, primary: Option<NodeId>, backup: Option<NodeId>) -> View {
        View {
            num: self.num + 1,
            primary,
            backup,
        }
    }
}

/// Why a handover was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandoverRefused {
    #[error("{from} is not the primary of view {num}")]
    NotPrimary { from: NodeId, num: u64 },
    #[error("view {asked} is not the current view ({current})")]
    Stale { asked: u64, current: u64 },
    #[error("the primary has not acknowledged view {0} yet")]
    Unacknowledged(u64),
    #[error("view {0} has no live backup to hand the primary role to")]
    NoBackup(u64),
}

pub struct ViewService {
    view: View,
    /// The primary pinged with the current view's number: only then may
    /// the view change.
    acked: bool,
    /// When each node last pinged, and with which view number.
    seen: BTreeMap<NodeId, (Instant, u64)>,
    /// A node that handed its primary role over: it is about to stop, so
    /// it is given no role until it starts again (pings with 0).
    released: Option<NodeId>,
    dead_after: Duration,
}

impl ViewService {
    pub fn new(dead_after: Duration) -> ViewService {
        ViewService {
            view: View::default(),
            acked: false,
            seen: BTreeMap::new(),
            released: None,
            dead_after,
        }
    }

    /// As the monitor starts again with the view it had kept: its nodes
    /// count as just seen, so that the first ping to arrive does not
    /// declare the other dead.
    pub fn resume(view: View, dead_after: Duration, now: Instant) -> ViewService {
        let mut s = ViewService::new(dead_after);
        for n in [&view.primary, &view.backup].into_iter().flatten() {
            s.seen.insert(n.clone(), (now, view.num));
        }
        s.view = view;
        s
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    pub fn acked(&self) -> bool {
        self.acked
    }

    fn alive(&self, node: &str, now: Instant) -> bool {
        self.seen
            .get(node)
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) < self.dead_after)
    }

    /// A node pinged with the view number it holds (0: it has just
    /// started). Answers the view it should hold.
    pub fn ping(&mut self, node: &str, num: u64, now: Instant) -> View {
        self.seen.insert(node.to_owned(), (now, num));
        let v = self.view.clone();
        if v.num == 0 {
            self.view = v.next(Some(node.to_owned()), None);
            self.acked = false;
            return self.view.clone();
        }
        let is_primary = v.primary.as_deref() == Some(node);
        let is_backup = v.backup.as_deref() == Some(node);
        if num == 0 && self.released.as_deref() == Some(node) {
            self.released = None;
        }
        if is_primary && num == v.num {
            self.acked = true;
        } else if is_primary && num == 0 && self.acked {
            // The primary started again: it may have missed writes its
            // backup has; the backup takes over and it becomes the backup.
            self.view = match &v.backup {
                Some(b) => v.next(Some(b.clone()), Some(node.to_owned())),
                None => v.next(Some(node.to_owned()), None),
            };
            self.acked = false;
        } else if is_backup && num == 0 && self.acked {
            // The backup started again: a new view, so that the primary
            // brings it up to date again.
            self.view = v.next(v.primary.clone(), Some(node.to_owned()));
            self.acked = false;
        }
        self.advance(now);
        self.view.clone()
    }

    /// What the passing of time changes: a dead backup replaced, a dead
    /// primary replaced by its backup, an idle node made the backup.
    fn advance(&mut self, now: Instant) {
        if !self.acked {
            return;
        }
        let v = self.view.clone();
        let primary_alive = v.primary.as_deref().is_some_and(|p| self.alive(p, now));
        let backup_alive = v.backup.as_deref().is_some_and(|b| self.alive(b, now));
        let next = if !primary_alive {
            // Only a backup the primary brought up to date may take over;
            // with none, the group waits for its primary.
            backup_alive.then(|| v.next(v.backup.clone(), self.idle(now, &v)))
        } else if v.backup.is_some() && !backup_alive {
            Some(v.next(v.primary.clone(), self.idle(now, &v)))
        } else if v.backup.is_none() {
            self.idle(now, &v)
                .map(|b| v.next(v.primary.clone(), Some(b)))
        } else {
            None
        };
        if let Some(n) = next {
            self.view = n;
            self.acked = false;
        }
    }

    /// A live node with no role, that is not about to stop.
    fn idle(&self, now: Instant, v: &View) -> Option<NodeId> {
        self.seen
            .keys()
            .filter(|n| Some(n.as_str()) != v.primary.as_deref())
            .filter(|n| Some(n.as_str()) != v.backup.as_deref())
            .filter(|n| Some(n.as_str()) != self.released.as_deref())
            .find(|n| self.alive(n, now))
            .cloned()
    }

    /// The primary `from`, in view `num`, hands its role to the backup and
    /// steps aside: it is about to stop, so it gets no role until it
    /// starts again.
    pub fn hand_over(
        &mut self,
        from: &str,
        num: u64,
        now: Instant,
    ) -> Result<View, HandoverRefused> {
        let v = self.view.clone();
        if num != v.num {
            return Err(HandoverRefused::Stale {
                asked: num,
                current: v.num,
            });
        }
        if v.primary.as_deref() != Some(from) {
            return Err(HandoverRefused::NotPrimary {
                from: from.to_owned(),
                num,
            });
        }
        if !self.acked {
            return Err(HandoverRefused::Unacknowledged(v.num));
        }
        let Some(backup) = v.backup.clone().filter(|b| self.alive(b, now)) else {
            return Err(HandoverRefused::NoBackup(v.num));
        };
        self.released = Some(from.to_owned());
        self.view = v.next(Some(backup), None);
        self.acked = false;
        Ok(self.view.clone())
    }

    /// Redundancy as the monitor sees it: a primary that acknowledged the
    /// view, a backup, both alive and holding this view.
    pub fn redundant(&self, now: Instant) -> bool {
        let v = &self.view;
        let holds = |n: &Option<NodeId>| {
            n.as_deref().is_some_and(|n| {
                self.alive(n, now) && self.seen.get(n).is_some_and(|(_, num)| *num == v.num)
            })
        };
        self.acked && holds(&v.primary) && holds(&v.backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD: Duration = Duration::from_secs(1);

    fn view(num: u64, p: Option<&str>, b: Option<&str>) -> View {
        View {
            num,
            primary: p.map(str::to_owned),
            backup: b.map(str::to_owned),
        }
    }

    /// a, b and c up; a primary, b backup, both acknowledged.
    fn steady(t: Instant) -> ViewService {
        let mut s = ViewService::new(DEAD);
        assert_eq!(s.ping("a", 0, t), view(1, Some("a"), None));
        s.ping("b", 0, t);
        s.ping("a", 1, t);
        assert_eq!(s.view(), &view(2, Some("a"), Some("b")));
        s.ping("a", 2, t);
        s.ping("b", 2, t);
        s.ping("c", 0, t);
        assert!(s.redundant(t));
        s
    }

    #[test]
    fn the_view_changes_only_once_the_primary_acknowledged_it() {
        let t = Instant::now();
        let mut s = ViewService::new(DEAD);
        s.ping("a", 0, t);
        // b comes, but a has not acknowledged view 1: no change yet.
        assert_eq!(s.ping("b", 0, t), view(1, Some("a"), None));
        assert!(!s.redundant(t));
        assert_eq!(s.ping("a", 1, t), view(2, Some("a"), Some("b")));
    }

    /// [`steady`], then b stops pinging while a and c go on: when c pings
    /// after b's death, c becomes the backup of view 3. The service and then.
    fn b_dies(t: Instant) -> (ViewService, Instant) {
        let mut s = steady(t);
        let t1 = t + DEAD / 2;
        s.ping("a", 2, t1);
        s.ping("c", 0, t1);
        let t2 = t + DEAD + DEAD / 4;
        s.ping("c", 0, t2);
        (s, t2)
    }

    #[test]
    fn a_dead_backup_is_replaced_and_a_dead_primary_by_its_backup() {
        let (mut s, t2) = b_dies(Instant::now());
        assert_eq!(
            s.view(),
            &view(3, Some("a"), Some("c")),
            "b died: c backs up"
        );
        s.ping("a", 3, t2);
        s.ping("c", 3, t2);
        // a stops pinging: c, brought up to date in view 3, takes over.
        let t3 = t2 + DEAD + DEAD / 4;
        s.ping("c", 3, t3);
        assert_eq!(s.view(), &view(4, Some("c"), None), "a died: c takes over");
    }

    #[test]
    fn an_unacknowledged_view_never_promotes_a_backup() {
        // b dies; c becomes the backup of view 3, which a never acknowledges.
        let (mut s, t2) = b_dies(Instant::now());
        assert_eq!(s.view(), &view(3, Some("a"), Some("c")));
        let t3 = t2 + DEAD * 2;
        s.ping("c", 3, t3);
        assert_eq!(
            s.view(),
            &view(3, Some("a"), Some("c")),
            "c may not have a's writes"
        );
    }

    #[test]
    fn a_handover_goes_to_the_backup_and_the_old_primary_gets_no_role_until_it_restarts() {
        let t = Instant::now();
        let mut s = steady(t);
        assert_eq!(
            s.hand_over("b", 2, t),
            Err(HandoverRefused::NotPrimary {
                from: "b".into(),
                num: 2
            })
        );
        assert_eq!(
            s.hand_over("a", 1, t),
            Err(HandoverRefused::Stale {
                asked: 1,
                current: 2
            })
        );
        assert_eq!(s.hand_over("a", 2, t), Ok(view(3, Some("b"), None)));
        // b acknowledges; a is still alive but released: c becomes the backup.
        s.ping("a", 3, t);
        s.ping("b", 3, t);
        assert_eq!(s.view(), &view(4, Some("b"), Some("c")));
        s.ping("b", 4, t);
        s.ping("c", 4, t);
        // a stops; started again (on another grid) it is a candidate again,
        // but the view has its backup.
        let later = t + DEAD / 2;
        s.ping("b", 4, later);
        s.ping("c", 4, later);
        assert_eq!(s.ping("a", 0, later), view(4, Some("b"), Some("c")));
        assert!(s.redundant(later));
    }

    #[test]
    fn a_restarted_backup_is_brought_up_to_date_again() {
        let t = Instant::now();
        let mut s = steady(t);
        assert_eq!(s.ping("b", 0, t), view(3, Some("a"), Some("b")));
        assert!(!s.redundant(t));
    }

    #[test]
    fn a_monitor_started_again_keeps_its_view_and_both_nodes() {
        let t = Instant::now();
        let mut s = ViewService::resume(view(7, Some("a"), Some("b")), DEAD, t);
        assert_eq!(s.ping("a", 7, t), view(7, Some("a"), Some("b")));
        s.ping("b", 7, t);
        assert!(s.redundant(t));
    }

    #[test]
    fn a_handover_needs_a_live_backup() {
        let t = Instant::now();
        let mut s = ViewService::new(DEAD);
        s.ping("a", 0, t);
        s.ping("a", 1, t);
        assert_eq!(s.hand_over("a", 1, t), Err(HandoverRefused::NoBackup(1)));
    }
}
