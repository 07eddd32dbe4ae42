//! `outpost logs`: an app's output, read straight from memlogd (works even
//! when the agent is down, given a task ID).

use anyhow::{Context, Result};
use outpost_runtime::Layout;

use super::apps::Ctx;

pub(super) async fn run(
    ctx: &Ctx,
    layout: &Layout,
    app: &str,
    follow: bool,
    tail: Option<usize>,
    stderr: bool,
) -> Result<i32> {
    let task = match ctx.app(app).await {
        Ok(s) => s
            .domain
            .map(|d| d.task_id)
            .with_context(|| format!("app {} has never had a task", s.display_name))?,
        // The agent is down but the operator named a task: still serve it.
        Err(_) if app.matches('.').count() >= 2 => app.to_owned(),
        Err(e) => return Err(e),
    };
    let prefix = if stderr {
        memlogd::STDERR_STREAM_PREFIX
    } else {
        memlogd::STDOUT_STREAM_PREFIX
    };
    let source = format!("{prefix}{task}");
    let q = layout.memlogd_query_socket();
    tokio::task::spawn_blocking(move || -> Result<i32> {
        let held = memlogd::dump(&q, Some(&source))
            .with_context(|| format!("reading memlogd at {}", q.display()))?;
        let skip = tail.map(|n| held.len().saturating_sub(n)).unwrap_or(0);
        let mut last = None;
        for e in &held[skip..] {
            println!("{}", e.msg);
            last = Some(e.time);
        }
        if follow {
            let stream = memlogd::follow(&q, memlogd::FollowFrom::Now, Some(&source))?;
            for e in stream {
                let e = e?;
                // The dump and the follow may overlap by a few entries.
                if last.as_ref().is_some_and(|t| e.time <= *t) {
                    continue;
                }
                last = None;
                println!("{}", e.msg);
            }
        }
        Ok(0)
    })
    .await?
}
