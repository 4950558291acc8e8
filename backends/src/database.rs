//! The database service (port 5002 in the lab): a real SQLite file under the data dir, seeded with items 1..=1000 on
//! first start, with a simulated query latency (100-300 ms by default) that the seed kept in the gateway.

use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{HistogramOpts, HistogramVec};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::error::AppError;
use crate::extract::{self, Path};
use crate::instance::{self, Instance};

/// How many items a fresh database is seeded with.
pub const SEED_ITEMS: i64 = 1000;

/// The file name of the database inside the data dir.
pub const FILE_NAME: &str = "database.sqlite3";

/// The SQLite store behind the service; one connection guarded by a mutex is plenty for a lab backend.
#[derive(Debug)]
pub struct Database {
    connection: Mutex<Connection>,
}

/// One row of the `items` table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Item {
    /// The item id.
    pub id: i64,
    /// Any JSON value.
    pub value: Value,
    /// Unix seconds of the last write.
    pub updated_at: f64,
}

impl Database {
    /// Opens (creating if needed) `<data_dir>/database.sqlite3` and seeds it when the table is empty.
    ///
    /// # Errors
    /// The directory cannot be created or SQLite fails to open or seed the file.
    pub fn open(data_dir: &FsPath) -> Result<Self, AppError> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            AppError::Internal(format!("creating data dir {}: {error}", data_dir.display()))
        })?;
        let mut connection =
            Connection::open(data_dir.join(FILE_NAME)).map_err(AppError::internal)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 CREATE TABLE IF NOT EXISTS items (
                     id INTEGER PRIMARY KEY,
                     value TEXT NOT NULL,
                     updated_at REAL NOT NULL
                 );",
            )
            .map_err(AppError::internal)?;
        let count: i64 = connection
            .query_row("SELECT COUNT(*) FROM items", [], |row| row.get(0))
            .map_err(AppError::internal)?;
        if count == 0 {
            // One transaction, so a crash mid-seed leaves an empty table that the next start seeds again.
            let transaction = connection.transaction().map_err(AppError::internal)?;
            {
                let mut insert = transaction
                    .prepare("INSERT INTO items (id, value, updated_at) VALUES (?1, ?2, ?3)")
                    .map_err(AppError::internal)?;
                let now = unix_now();
                for id in 1..=SEED_ITEMS {
                    let value = json!({ "name": format!("item {id}"), "version": 0 });
                    insert
                        .execute(params![id, value.to_string(), now])
                        .map_err(AppError::internal)?;
                }
            }
            transaction.commit().map_err(AppError::internal)?;
        }
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot corrupt SQLite's own state, so keep serving.
        scalelab_common::sync::lock(&self.connection)
    }

    /// The number of items.
    ///
    /// # Errors
    /// A SQLite failure.
    pub fn count(&self) -> Result<i64, AppError> {
        self.lock()
            .query_row("SELECT COUNT(*) FROM items", [], |row| row.get(0))
            .map_err(AppError::internal)
    }

    /// The item with this id, if any.
    ///
    /// # Errors
    /// A SQLite failure or a stored value that is not JSON.
    pub fn get(&self, id: i64) -> Result<Option<Item>, AppError> {
        let row: Option<(String, f64)> = self
            .lock()
            .query_row(
                "SELECT value, updated_at FROM items WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(AppError::internal)?;
        row.map(|(text, updated_at)| {
            let value = serde_json::from_str(&text).map_err(AppError::internal)?;
            Ok(Item {
                id,
                value,
                updated_at,
            })
        })
        .transpose()
    }

    /// Inserts or replaces the item; returns it and whether it was created.
    ///
    /// # Errors
    /// A SQLite failure.
    pub fn put(&self, id: i64, value: Value) -> Result<(Item, bool), AppError> {
        let updated_at = unix_now();
        let connection = self.lock();
        let existed: bool = connection
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM items WHERE id = ?1)",
                [id],
                |row| row.get(0),
            )
            .map_err(AppError::internal)?;
        connection
            .execute(
                "INSERT INTO items (id, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![id, value.to_string(), updated_at],
            )
            .map_err(AppError::internal)?;
        Ok((
            Item {
                id,
                value,
                updated_at,
            },
            !existed,
        ))
    }
}

/// The simulated query latency, drawn uniformly from `min..=max` before every query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    /// The shortest delay.
    pub min: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Latency {
    /// No simulated latency (tests).
    pub const NONE: Self = Self {
        min: Duration::ZERO,
        max: Duration::ZERO,
    };

    async fn wait(self) {
        let min = u64::try_from(self.min.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.max.as_millis())
            .unwrap_or(u64::MAX)
            .max(min);
        let delay = fastrand::u64(min..=max);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

/// Query-duration buckets in seconds: SQLite answers a lookup in tens of microseconds, far below the 0.5 ms floor of
/// the HTTP buckets, while a slow disk or a busy lock can take a second.
pub const QUERY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0,
];

/// The kinds of statement the service runs, one `query` label value each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    /// `SELECT COUNT(*)` behind `GET /db`.
    CountItems,
    /// `SELECT` of one row behind `GET /items/{id}`.
    GetItem,
    /// The existence check and insert-or-update behind `PUT /items/{id}`.
    UpsertItem,
}

impl QueryKind {
    const ALL: [Self; 3] = [Self::CountItems, Self::GetItem, Self::UpsertItem];

    const fn as_str(self) -> &'static str {
        match self {
            Self::CountItems => "count_items",
            Self::GetItem => "get_item",
            Self::UpsertItem => "upsert_item",
        }
    }
}

/// The database service's state.
#[derive(Debug, Clone)]
pub struct DatabaseState {
    /// Name, registry and chaos knobs.
    pub instance: Arc<Instance>,
    /// The SQLite store.
    pub database: Arc<Database>,
    /// The simulated query latency.
    pub latency: Latency,
    /// `scalelab_database_query_duration_seconds{query}`.
    queries: HistogramVec,
}

impl DatabaseState {
    /// Builds the state and registers the query histogram in the instance's registry.
    ///
    /// # Errors
    /// The histogram cannot be registered (the instance already has one).
    pub fn new(
        instance: Arc<Instance>,
        database: Arc<Database>,
        latency: Latency,
    ) -> Result<Self, AppError> {
        let queries = HistogramVec::new(
            HistogramOpts::new(
                "scalelab_database_query_duration_seconds",
                "Time SQLite takes to run one query, waiting for the connection included, simulated latency excluded",
            )
            .buckets(QUERY_BUCKETS.to_vec()),
            &["query"],
        )
        .map_err(AppError::internal)?;
        instance
            .registry()
            .register(Box::new(queries.clone()))
            .map_err(AppError::internal)?;
        // Every kind is exported from the start, so a dashboard shows an empty histogram rather than no data.
        for kind in QueryKind::ALL {
            queries.with_label_values(&[kind.as_str()]);
        }
        Ok(Self {
            instance,
            database,
            latency,
            queries,
        })
    }

    /// Runs one query on the blocking pool, so a slow disk never stalls the async workers, and times it there: the
    /// wait for a blocking thread is the runtime's cost, not the query's.
    async fn query<T: Send + 'static>(
        &self,
        kind: QueryKind,
        run: impl FnOnce(&Database) -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let database = Arc::clone(&self.database);
        let histogram = self.queries.with_label_values(&[kind.as_str()]);
        let span = crate::traced::Child::begin(
            kind.as_str(),
            scalelab_common::trace::export::Kind::Internal,
        );
        let result = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = run(&database);
            histogram.observe(started.elapsed().as_secs_f64());
            result
        })
        .await
        .map_err(AppError::internal)
        .and_then(|result| result);
        if let Some(span) = span {
            use scalelab_common::trace::export::Attribute;
            span.end(
                vec![
                    Attribute::new("db.system.name", "sqlite"),
                    Attribute::new("db.operation.name", kind.as_str()),
                ],
                result.as_ref().err().map(ToString::to_string),
            );
        }
        result
    }
}

/// The database's routes plus the common ones.
pub fn router(state: DatabaseState) -> Router {
    let instance = Arc::clone(&state.instance);
    let service = Router::new()
        .route("/db", get(db))
        .route("/items/{id}", get(get_item).put(put_item))
        .with_state(state);
    instance::wrap(&instance, service)
}

async fn db(State(state): State<DatabaseState>) -> Result<Json<Value>, AppError> {
    state.latency.wait().await;
    let items = state.query(QueryKind::CountItems, Database::count).await?;
    Ok(Json(json!({
        "message": "Fetched fresh data from DB",
        "instance": state.instance.name(),
        "items": items,
    })))
}

async fn get_item(
    State(state): State<DatabaseState>,
    Path(id): Path<i64>,
) -> Result<Json<Item>, AppError> {
    state.latency.wait().await;
    state
        .query(QueryKind::GetItem, move |database| database.get(id))
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("item {id} not found")))
}

async fn put_item(
    State(state): State<DatabaseState>,
    Path(id): Path<i64>,
    extract::Json(value): extract::Json<Value>,
) -> Result<(StatusCode, Json<Item>), AppError> {
    if id <= 0 {
        return Err(AppError::BadRequest(
            "item ids are positive integers".to_owned(),
        ));
    }
    state.latency.wait().await;
    let (item, created) = state
        .query(QueryKind::UpsertItem, move |database| {
            database.put(id, value)
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item)))
}

fn unix_now() -> f64 {
    scalelab_common::clock::unix_secs_f64()
}

#[cfg(test)]
mod tests;
