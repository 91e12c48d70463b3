//! Throwaway databases for tests and benchmarks: a fresh SQLite file or a fresh PostgreSQL
//! database per caller, so tests never share state and can run in parallel.
//!
//! PostgreSQL is reached through `VACANCY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the databases it creates are named
//! `vacancy_test_*` and the test script drops old ones. A missing server is an error, never a
//! reason to skip.

use sqlx::{Connection, Executor};

use crate::{Backend, StoreError};

/// The admin URL fresh PostgreSQL databases are created through.
pub fn postgres_admin_url() -> String {
    std::env::var("VACANCY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A URL for an empty database of `backend` that nobody else uses.
pub async fn fresh_database_url(backend: Backend) -> Result<String, StoreError> {
    let name = format!("vacancy_test_{}", uuid::Uuid::now_v7().simple());
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir()
                .join("vacancy-tests")
                .join(format!("{name}.db"));
            Ok(format!("sqlite://{}", path.display()))
        }
        Backend::Postgres => {
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await?;
            conn.close().await?;
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base);
            Ok(format!("{base}/{name}"))
        }
    }
}
