//! A replica's core tasks: the long-running parts it cannot work without (watches, reconcilers, the propagation
//! engine, the writer, the webhook server). None of them ends while the replica runs, so one that ends or panics
//! means the replica can no longer do its work; [`CoreTasks::ended`] says which one and how, and the replica
//! then stops holding work — readiness closes, its Leases are released, the process exits non-zero — instead of
//! renewing Leases for trees nothing maintains any more.
//!
//! Restarting the failed part in place is not attempted: each part holds state the others were built against
//! (the engine's cache, the reconciler's index, the writer's in-flight table), so a restart would have to prove
//! it rebuilds all of it. A new process does, and the other replicas hold the trees meanwhile.
//!
//! With the `fault-injection` feature (tests only; not in the deployment build), `/debug/fault?panic=<task>`
//! makes the named core task panic, so tests can check the above.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

/// Named tasks whose end is fatal to the replica.
#[derive(Default)]
pub struct CoreTasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    #[cfg(feature = "fault-injection")]
    faults: injection::Switch,
}

impl CoreTasks {
    /// Spawns `task` as the core task `name`.
    pub fn spawn<F>(&mut self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        #[cfg(feature = "fault-injection")]
        let task = self.faults.wrap(name, task);
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// Spawns every task of `tasks` as one core task `name`: it ends (or panics) when the first of them does,
    /// and dropping it aborts the rest.
    pub fn spawn_group(&mut self, name: &'static str, mut tasks: JoinSet<()>) {
        self.spawn(name, async move {
            match tasks.join_next().await {
                None => std::future::pending().await,
                Some(Ok(())) => {}
                Some(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Some(Err(_cancelled)) => {}
            }
        });
    }

    /// Resolves when a core task has ended, with which and how; never while all run (or none was spawned).
    pub async fn ended(&mut self) -> anyhow::Error {
        let Some(result) = self.set.join_next_with_id().await else {
            return std::future::pending().await;
        };
        match result {
            Ok((id, ())) => anyhow::anyhow!("core task {} ended", self.name(id)),
            Err(error) => {
                let name = self.name(error.id());
                if error.is_panic() {
                    anyhow::anyhow!("core task {name} panicked: {}", panic_message(error.into_panic()))
                } else {
                    anyhow::anyhow!("core task {name} was cancelled")
                }
            }
        }
    }

    /// Aborts every task and waits until all have stopped.
    pub async fn shutdown(&mut self) {
        self.set.abort_all();
        while self.set.join_next().await.is_some() {}
    }

    fn name(&self, id: Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("(unnamed)")
    }

    /// The page that injects faults into these tasks (`fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    pub fn fault_page(&self) -> crate::ops::DebugPage {
        self.faults.page()
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted message), or a placeholder.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}

#[cfg(feature = "fault-injection")]
mod injection {
    use std::future::Future;
    use std::sync::Arc;

    use tokio::sync::watch;

    /// Which task is asked to panic.
    pub(super) struct Switch {
        tx: Arc<watch::Sender<Option<String>>>,
    }

    impl Default for Switch {
        fn default() -> Self {
            Switch { tx: Arc::new(watch::channel(None).0) }
        }
    }

    impl Switch {
        /// `task`, made to panic when its name is requested.
        pub(super) fn wrap<F>(&self, name: &'static str, task: F) -> impl Future<Output = ()> + Send + 'static
        where
            F: Future<Output = ()> + Send + 'static,
        {
            let mut asked = self.tx.subscribe();
            async move {
                tokio::select! {
                    () = task => {}
                    _ = asked.wait_for(|asked| asked.as_deref() == Some(name)) => {
                        panic!("fault injection: {name} was asked to panic");
                    }
                }
            }
        }

        /// `/debug/fault?panic=<task>`.
        pub(super) fn page(&self) -> crate::ops::DebugPage {
            let tx = self.tx.clone();
            Arc::new(move |query| match query.get("panic") {
                Some(task) => {
                    tx.send_replace(Some(task.clone()));
                    serde_json::json!({ "panicking": task })
                }
                None => serde_json::json!({ "error": "name a core task: ?panic=<task>" }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_ends_or_panics_is_named() {
        let mut tasks = CoreTasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn("forever", std::future::pending());
        tasks.spawn("one-shot", async move {
            let _ = rx.await;
        });
        tx.send(()).unwrap();
        assert_eq!(tasks.ended().await.to_string(), "core task one-shot ended");
        tasks.spawn("panicking", async { panic!("boom {}", 7) });
        assert_eq!(tasks.ended().await.to_string(), "core task panicking panicked: boom 7");
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn a_group_fails_with_its_first_member() {
        let mut tasks = CoreTasks::default();
        let mut group = JoinSet::new();
        group.spawn(std::future::pending());
        group.spawn(async { panic!("member failed") });
        tasks.spawn_group("webhooks", group);
        assert_eq!(tasks.ended().await.to_string(), "core task webhooks panicked: member failed");
        let mut empty = CoreTasks::default();
        empty.spawn_group("nothing", JoinSet::new());
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), empty.ended()).await;
        assert!(waited.is_err(), "an empty group runs for as long as the replica");
    }
}
