use std::process::ExitCode;

use clap::Parser;
use vacancy_bench::cli::{BenchArgs, Mode, shell_line};

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let command =
        shell_line(std::iter::once("vacancy-bench".to_owned()).chain(std::env::args().skip(1)));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads())
        .thread_name("vacancy-bench-client")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match args.mode()? {
            Mode::Load(_) => {
                let report = vacancy_bench::run::run(&args, command).await?;
                let markdown = vacancy_bench::run::write_outputs(&report, &args)?;
                anyhow::Ok((markdown, vacancy_bench::run::overbookings(&report)))
            }
            Mode::Freshness => {
                let report = vacancy_bench::freshness::run(&args, command).await?;
                let markdown = report.to_markdown();
                write_outputs(&args, &serde_json::to_string_pretty(&report)?, &markdown)?;
                Ok((markdown, 0))
            }
            Mode::Memory => {
                let report = vacancy_bench::memory::run(&args, command).await?;
                let markdown = report.to_markdown();
                write_outputs(&args, &serde_json::to_string_pretty(&report)?, &markdown)?;
                Ok((markdown, 0))
            }
        }
    });
    match outcome {
        Ok((markdown, overbooked)) => {
            println!("{markdown}");
            if overbooked > 0 {
                eprintln!("error: the audit found {overbooked} overbooked nights");
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--out` and `--markdown` of the modes that have no latency plot.
fn write_outputs(args: &BenchArgs, json: &str, markdown: &str) -> anyhow::Result<()> {
    if let Some(path) = &args.out {
        vacancy_bench::run::write(path, json)?;
    }
    if let Some(path) = &args.markdown {
        vacancy_bench::run::write(path, markdown)?;
    }
    Ok(())
}
