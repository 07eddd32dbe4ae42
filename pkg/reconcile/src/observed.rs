//! What the runtime reports for each app container, and EVE's mapping from a
//! containerd task status to a [`SwState`].

use outpost_api::SwState;
use serde::{Deserialize, Serialize};

/// What the runtime reports for one app container (built by the agent from
/// containerd labels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// containerd container/task ID `<uuid>.<version>.<app_num>`.
    pub task_id: String,
    /// App UUID (label).
    pub uuid: String,
    /// Config version the container was created from (label).
    pub version: String,
    /// App number the container was created with (label).
    pub app_num: u32,
    /// Generation of its container volume dir (the purge counter it was created with).
    pub purge_counter: u64,
    /// containerd task status.
    pub phase: Phase,
    /// Exit status, once the task stopped.
    pub exit_status: Option<u32>,
    /// Host PID of the init process, while it runs.
    pub pid: Option<u32>,
}

/// containerd task status of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Task created, not started.
    Created,
    /// Task running.
    Running,
    /// Task being frozen.
    Pausing,
    /// Task frozen.
    Paused,
    /// Task exited; its exit status is in [`Observed::exit_status`].
    Stopped,
    /// The container exists but has no task (after a reboot, or the shim died).
    NoTask,
}

impl Observed {
    /// EVE's state for this container: created→INSTALLED, running→RUNNING,
    /// pausing→PAUSING, paused→PAUSED, stopped with exit 0→HALTED, stopped
    /// otherwise→BROKEN, no task→UNKNOWN.
    ///
    /// A stopped task without an exit status counts as broken: nothing says it
    /// ended well.
    pub fn state(&self) -> SwState {
        match self.phase {
            Phase::Created => SwState::Installed,
            Phase::Running => SwState::Running,
            Phase::Pausing => SwState::Pausing,
            Phase::Paused => SwState::Paused,
            Phase::Stopped if self.exit_status == Some(0) => SwState::Halted,
            Phase::Stopped => SwState::Broken,
            Phase::NoTask => SwState::Unknown,
        }
    }

    /// True when the task stopped with exit status 0.
    pub fn exited_cleanly(&self) -> bool {
        self.phase == Phase::Stopped && self.exit_status == Some(0)
    }

    /// The exit status as status text shows it (`3`, or `unknown`).
    pub fn exit_text(&self) -> String {
        match self.exit_status {
            Some(n) => n.to_string(),
            None => "unknown".into(),
        }
    }
}

impl Phase {
    /// Rank used to pick the container that represents an app when several
    /// exist: the one that is most alive wins.
    fn liveliness(self) -> u8 {
        match self {
            Phase::Running => 5,
            Phase::Pausing | Phase::Paused => 4,
            Phase::Created => 3,
            Phase::Stopped => 2,
            Phase::NoTask => 1,
        }
    }
}

/// Splits one app's containers into the one that represents it and the
/// stale rest.
///
/// The current container is the one whose task ID matches `task_id` (the
/// desired one); failing that, the most alive one, ties broken by task ID so
/// the choice is stable. Stale containers are leftovers of an interrupted
/// replacement and get halted (their volume is the app's, so it is kept).
pub(crate) fn pick_current<'a>(
    task_id: &str,
    mine: &[&'a Observed],
) -> (Option<&'a Observed>, Vec<&'a Observed>) {
    let current = mine
        .iter()
        .copied()
        .find(|o| o.task_id == task_id)
        .or_else(|| {
            mine.iter().copied().max_by(|a, b| {
                (a.phase.liveliness(), &b.task_id).cmp(&(b.phase.liveliness(), &a.task_id))
            })
        });
    let stale = mine
        .iter()
        .copied()
        .filter(|o| current.is_none_or(|c| c.task_id != o.task_id))
        .collect();
    (current, stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(task: &str, phase: Phase, exit: Option<u32>) -> Observed {
        Observed {
            task_id: task.into(),
            uuid: "u".into(),
            version: "1".into(),
            app_num: 1,
            purge_counter: 0,
            phase,
            exit_status: exit,
            pid: None,
        }
    }

    #[test]
    fn states_follow_eve() {
        let cases = [
            (Phase::Created, None, SwState::Installed),
            (Phase::Running, None, SwState::Running),
            (Phase::Pausing, None, SwState::Pausing),
            (Phase::Paused, None, SwState::Paused),
            (Phase::Stopped, Some(0), SwState::Halted),
            (Phase::Stopped, Some(3), SwState::Broken),
            (Phase::Stopped, None, SwState::Broken),
            (Phase::NoTask, None, SwState::Unknown),
        ];
        for (phase, exit, want) in cases {
            assert_eq!(obs("t", phase, exit).state(), want, "{phase:?} {exit:?}");
        }
    }

    #[test]
    fn the_desired_task_wins_then_the_most_alive() {
        let a = obs("u.1.1", Phase::Running, None);
        let b = obs("u.2.1", Phase::Stopped, Some(0));
        let c = obs("u.3.1", Phase::NoTask, None);
        let (cur, stale) = pick_current("u.2.1", &[&a, &b, &c]);
        assert_eq!(cur.unwrap().task_id, "u.2.1");
        assert_eq!(stale.len(), 2);
        let (cur, stale) = pick_current("u.9.1", &[&c, &b, &a]);
        assert_eq!(cur.unwrap().task_id, "u.1.1");
        assert_eq!(stale.len(), 2);
        let (cur, stale) = pick_current("u.9.1", &[]);
        assert!(cur.is_none() && stale.is_empty());
    }
}
