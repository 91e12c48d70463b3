//! The `vacancy` command. Thin on purpose: parsing flags and logging setup live here, the
//! service itself in `vacancy_api`.

mod cli;
mod seed;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    cli.run().await
}
