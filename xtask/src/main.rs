//! `cargo xtask`: corpus generation, the bench suite with peers, relevance, fuzzing, torture.

fn main() -> anyhow::Result<()> {
    let task = std::env::args().nth(1);
    anyhow::bail!("unknown task {task:?}: xtask subcommands arrive with their issues")
}
