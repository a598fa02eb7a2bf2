//! `mighelper`: reads its job from the environment, does it, and exits 0
//! when the copy is done and verified, 1 otherwise (the reason is logged).

#[tokio::main]
async fn main() {
    let job = match helper::Job::from_env(|k| std::env::var(k).ok()) {
        Ok(job) => job,
        Err(e) => {
            helper::run::emit(operation_model::Report::Failed {
                reason: format!("the helper's environment is incomplete: {e}"),
            });
            std::process::exit(2);
        }
    };
    match helper::run::run(&job).await {
        Ok(()) => helper::run::say("done"),
        Err(_) => std::process::exit(1),
    }
}
