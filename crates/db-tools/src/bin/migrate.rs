//! `migrate`: brings a database to the newest schema (see `db_tools::migrations` for the rules).

use std::{path::PathBuf, process::ExitCode};

use db_tools::{admin_url, args::Args, migrations};

const USAGE: &str = "\
usage: migrate [--database-url <superuser-or-owner url>] [--create-db] [--app-password <pw>]
               [--scanner-password <pw>] [--dir <migrations dir>]

  --database-url   target database; default $DATABASE_ADMIN_URL, else postgres://postgres@127.0.0.1:5432/postgres
  --create-db      create the database (owned by attachments_owner) if it does not exist
  --app-password   set attachments_app's password (default $ATTACHMENTS_APP_PASSWORD; unset = leave as is)
  --scanner-password
                   set attachments_scanner's password, the scan worker's role (default
                   $ATTACHMENTS_SCANNER_PASSWORD; unset = leave as is)
  --dir            apply the *.sql of this directory instead of the migrations built into this binary";

fn main() -> ExitCode {
    let args = match Args::parse(
        std::env::args().skip(1),
        &["database-url", "app-password", "scanner-password", "dir"],
        &["create-db", "help"],
    ) {
        Ok(a) if !a.flag("help") => a,
        Ok(_) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("migrate: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let migrations = match args.value("dir") {
        Some(dir) => match migrations::load_dir(&PathBuf::from(dir)) {
            Ok(list) => list,
            Err(e) => {
                eprintln!("migrate: error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => migrations::embedded(),
    };
    let from_env = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
    let options = migrations::Options {
        create_db: args.flag("create-db"),
        app_password: args
            .value("app-password")
            .or_else(|| from_env("ATTACHMENTS_APP_PASSWORD")),
        scanner_password: args
            .value("scanner-password")
            .or_else(|| from_env("ATTACHMENTS_SCANNER_PASSWORD")),
        migrations,
    };
    let url = admin_url(args.value("database-url"));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(migrations::migrate(&url, options)) {
        Ok(report) => {
            for file in &report.applied {
                eprintln!("migrate: applied {file}");
            }
            eprintln!("migrate: {report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: error: {e}");
            ExitCode::FAILURE
        }
    }
}
