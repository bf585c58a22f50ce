//! The SQLite and PostgreSQL migrations describe the same schema: every migration is applied
//! (by `Store::migrate`, as `serve` does) to a fresh SQLite file and to a fresh database of a
//! private PostgreSQL (support::postgres), then both catalogs are read back and compared:
//! tables, columns (name, nullability, a type family), primary keys, unique constraints and
//! indexes (name, columns, unique, partial). A failure lists every difference, one a line.
//!
//! The two migration trees are written by hand, in step (only key and blob types differ), and
//! the store's portable SQL relies on that: a column added on one backend only would pass
//! every test on the other. Runs in `cargo test` (scripts/test), whatever
//! `TICKETGATE_TEST_DATABASE` says. PostgreSQL missing is a failure, not a skip (install it
//! with scripts/install-deps).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sqlx::Row;
use support::postgres::PgDatabase;
use ticketgate::store::Store;

/// What both backends can say about a column's type, in words the two catalogs share:
/// SQLite's declared type goes through its affinity rules (INTEGER and BIGINT are both
/// integer), PostgreSQL's `data_type` through its own families (BIGINT and INTEGER too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeFamily {
    Integer,
    Text,
    Blob,
    Boolean,
    Real,
    Numeric,
}

impl fmt::Display for TypeFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeFamily::Integer => "integer",
            TypeFamily::Text => "text",
            TypeFamily::Blob => "blob",
            TypeFamily::Boolean => "boolean",
            TypeFamily::Real => "real",
            TypeFamily::Numeric => "numeric",
        })
    }
}

impl TypeFamily {
    /// SQLite's column affinity (https://sqlite.org/datatype3.html, 3.1), with BOOLEAN
    /// named as such first (SQLite would call it numeric).
    fn of_sqlite(declared: &str) -> TypeFamily {
        let t = declared.to_ascii_uppercase();
        if t.starts_with("BOOL") {
            TypeFamily::Boolean
        } else if t.contains("INT") {
            TypeFamily::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            TypeFamily::Text
        } else if t.contains("BLOB") || t.is_empty() {
            TypeFamily::Blob
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            TypeFamily::Real
        } else {
            TypeFamily::Numeric
        }
    }

    /// PostgreSQL's `information_schema.columns.data_type`.
    fn of_postgres(data_type: &str) -> TypeFamily {
        match data_type {
            "smallint" | "integer" | "bigint" => TypeFamily::Integer,
            "text" | "character varying" | "character" => TypeFamily::Text,
            "bytea" => TypeFamily::Blob,
            "boolean" => TypeFamily::Boolean,
            "real" | "double precision" => TypeFamily::Real,
            _ => TypeFamily::Numeric,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    family: TypeFamily,
    nullable: bool,
}

/// An index made by CREATE INDEX (not the one behind a PRIMARY KEY or UNIQUE constraint).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({})", self.columns.join(", "))?;
        if self.unique {
            f.write_str(" unique")?;
        }
        if self.partial {
            f.write_str(" partial")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    /// Column lists of the UNIQUE constraints (their index names differ by backend:
    /// `sqlite_autoindex_ticket_1` against `ticket_ref_key`).
    uniques: BTreeSet<Vec<String>>,
    /// Named indexes: the names are the migrations' own, so they must match.
    indexes: BTreeMap<String, Index>,
}

/// Tables by name, without the migrator's own `_sqlx_migrations`.
type Schema = BTreeMap<String, Table>;

const SQLITE: &str = "SQLite";
const POSTGRES: &str = "PostgreSQL";

/// Every difference between `a` (named `a_name`) and `b`, one sentence each.
fn differences(a_name: &str, a: &Schema, b_name: &str, b: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for (name, table) in a {
        let Some(other) = b.get(name) else {
            out.push(format!("table {name}: only on {a_name}"));
            continue;
        };
        out.extend(
            table_differences(a_name, table, b_name, other)
                .into_iter()
                .map(|d| format!("table {name}: {d}")),
        );
    }
    for name in b.keys().filter(|name| !a.contains_key(*name)) {
        out.push(format!("table {name}: only on {b_name}"));
    }
    out
}

fn table_differences(a_name: &str, a: &Table, b_name: &str, b: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for (name, column) in &a.columns {
        let Some(other) = b.columns.get(name) else {
            out.push(format!("column {name}: only on {a_name}"));
            continue;
        };
        if column.family != other.family {
            out.push(format!(
                "column {name}: {} on {a_name}, {} on {b_name}",
                column.family, other.family
            ));
        }
        if column.nullable != other.nullable {
            let says = |nullable: bool| if nullable { "nullable" } else { "NOT NULL" };
            out.push(format!(
                "column {name}: {} on {a_name}, {} on {b_name}",
                says(column.nullable),
                says(other.nullable)
            ));
        }
    }
    for name in b.columns.keys().filter(|n| !a.columns.contains_key(*n)) {
        out.push(format!("column {name}: only on {b_name}"));
    }
    if a.primary_key != b.primary_key {
        out.push(format!(
            "primary key: ({}) on {a_name}, ({}) on {b_name}",
            a.primary_key.join(", "),
            b.primary_key.join(", ")
        ));
    }
    for columns in a.uniques.difference(&b.uniques) {
        out.push(format!("UNIQUE ({}): only on {a_name}", columns.join(", ")));
    }
    for columns in b.uniques.difference(&a.uniques) {
        out.push(format!("UNIQUE ({}): only on {b_name}", columns.join(", ")));
    }
    for (name, index) in &a.indexes {
        match b.indexes.get(name) {
            None => out.push(format!("index {name} {index}: only on {a_name}")),
            Some(other) if other != index => out.push(format!(
                "index {name}: {index} on {a_name}, {other} on {b_name}"
            )),
            Some(_) => {}
        }
    }
    for (name, index) in b
        .indexes
        .iter()
        .filter(|(n, _)| !a.indexes.contains_key(*n))
    {
        out.push(format!("index {name} {index}: only on {b_name}"));
    }
    out
}

/// Applies the migrations to `url` the way `serve` does.
async fn migrate(url: &str) {
    let store = Store::connect(url, 1)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate {url}: {e}"));
    store.close().await;
}

/// The schema of a SQLite database, from `sqlite_schema` and the table-valued pragmas.
async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(pool)
    .await
    .expect("SQLite tables");
    let mut schema = Schema::new();
    for name in tables {
        let mut table = Table::default();
        let mut primary_key = Vec::new();
        let columns = sqlx::query(r#"SELECT name, type, "notnull", pk FROM pragma_table_info($1)"#)
            .bind(&name)
            .fetch_all(pool)
            .await
            .expect("SQLite columns");
        for row in columns {
            let column: String = row.get("name");
            let pk: i64 = row.get("pk");
            // A PRIMARY KEY column says notnull = 0 in SQLite (an INTEGER PRIMARY KEY is the
            // rowid and never NULL; the store never writes NULL keys either): count it as
            // NOT NULL, as PostgreSQL's primary keys are.
            let nullable = row.get::<i64, _>("notnull") == 0 && pk == 0;
            if pk > 0 {
                primary_key.push((pk, column.clone()));
            }
            let family = TypeFamily::of_sqlite(row.get("type"));
            table.columns.insert(column, Column { family, nullable });
        }
        primary_key.sort();
        table.primary_key = primary_key.into_iter().map(|(_, c)| c).collect();
        let indexes =
            sqlx::query(r#"SELECT name, "unique", origin, partial FROM pragma_index_list($1)"#)
                .bind(&name)
                .fetch_all(pool)
                .await
                .expect("SQLite indexes");
        for row in indexes {
            let index: String = row.get("name");
            let columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(pool)
                    .await
                    .expect("SQLite index columns");
            // origin: c = CREATE INDEX, u = UNIQUE constraint, pk = PRIMARY KEY constraint.
            match row.get::<String, _>("origin").as_str() {
                "u" => {
                    table.uniques.insert(columns);
                }
                "pk" => {}
                _ => {
                    let unique = row.get::<i64, _>("unique") != 0;
                    let partial = row.get::<i64, _>("partial") != 0;
                    table.indexes.insert(
                        index,
                        Index {
                            columns,
                            unique,
                            partial,
                        },
                    );
                }
            }
        }
        schema.insert(name, table);
    }
    schema
}

/// The schema of the current schema of a PostgreSQL database, from information_schema and
/// pg_index.
async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL tables");
    let mut schema: Schema = tables.into_iter().map(|t| (t, Table::default())).collect();
    let columns = sqlx::query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                data_type::text AS data_type, is_nullable::text AS is_nullable \
         FROM information_schema.columns WHERE table_schema = current_schema()",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL columns");
    for row in columns {
        let Some(table) = schema.get_mut(row.get::<&str, _>("table_name")) else {
            continue;
        };
        let family = TypeFamily::of_postgres(row.get("data_type"));
        let nullable = row.get::<&str, _>("is_nullable") == "YES";
        table
            .columns
            .insert(row.get("column_name"), Column { family, nullable });
    }
    // Every index, with its columns in key order and whether a PRIMARY KEY or UNIQUE
    // constraint of its own table owns it (a foreign key's conindid names the referenced
    // table's index: hence conrelid).
    let indexes = sqlx::query(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
                x.indisprimary AS is_primary, x.indisunique AS is_unique, \
                x.indpred IS NOT NULL AS partial, \
                EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid \
                        AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u')) AS constraint_owned, \
                ARRAY(SELECT a.attname::text \
                      FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                      ORDER BY k.ord) AS columns \
         FROM pg_index x \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema()",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL indexes");
    for row in indexes {
        let Some(table) = schema.get_mut(row.get::<&str, _>("table_name")) else {
            continue;
        };
        let columns: Vec<String> = row.get("columns");
        let unique: bool = row.get("is_unique");
        if row.get::<bool, _>("is_primary") {
            table.primary_key = columns;
        } else if row.get::<bool, _>("constraint_owned") {
            table.uniques.insert(columns);
        } else {
            let partial = row.get("partial");
            table.indexes.insert(
                row.get("index_name"),
                Index {
                    columns,
                    unique,
                    partial,
                },
            );
        }
    }
    schema
}

/// A fresh SQLite file, migrated, and a pool on it; the directory lives as long as the pool
/// is used.
async fn migrated_sqlite() -> (tempfile::TempDir, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/ticketgate.db", dir.path().display());
    migrate(&url).await;
    // One connection: the schema changes of the comparison's own test are seen at once.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    (dir, pool)
}

fn report(differences: &[String]) -> String {
    differences
        .iter()
        .map(|d| format!("  - {d}\n"))
        .collect::<String>()
}

#[tokio::test]
async fn the_sqlite_and_postgres_migrations_describe_the_same_schema() {
    let (_dir, sqlite) = migrated_sqlite().await;
    let on_sqlite = sqlite_schema(&sqlite).await;
    sqlite.close().await;

    let db = PgDatabase::create();
    migrate(&db.url).await;
    let postgres = sqlx::PgPool::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", db.url));
    let on_postgres = postgres_schema(&postgres).await;
    postgres.close().await;

    // A catalog read that found nothing would compare equal: make sure both saw the schema.
    for (backend, schema) in [(SQLITE, &on_sqlite), (POSTGRES, &on_postgres)] {
        let outbox = schema
            .get("outbox")
            .unwrap_or_else(|| panic!("{backend}: no table outbox in {schema:#?}"));
        assert!(
            outbox.columns.contains_key("lease_owner") && outbox.indexes.contains_key("outbox_due"),
            "{backend}: the last migration's column or the outbox index not read: {outbox:#?}"
        );
    }
    let found = differences(SQLITE, &on_sqlite, POSTGRES, &on_postgres);
    assert!(
        found.is_empty(),
        "the migrations of migrations/sqlite and migrations/postgres differ:\n{}",
        report(&found)
    );
}

#[tokio::test]
async fn the_comparison_names_every_kind_of_difference() {
    let (_dir, pool) = migrated_sqlite().await;
    let before = sqlite_schema(&pool).await;
    for statement in [
        "CREATE TABLE only_here (only_here_id INTEGER PRIMARY KEY, note TEXT UNIQUE)",
        "ALTER TABLE ticket ADD COLUMN extra BLOB",
        "DROP INDEX ticket_citizen",
        "CREATE INDEX ticket_citizen ON ticket (citizen, status)",
        "CREATE UNIQUE INDEX event_at ON event (at) WHERE kind = 'note'",
        "CREATE UNIQUE INDEX mailbox_state_uid ON mailbox_state (last_uid)",
        // One change of type family and one of nullability: SQLite rewrites the table.
        "CREATE TABLE ticket_counter_new (year TEXT PRIMARY KEY, last_seq BIGINT)",
        "DROP TABLE ticket_counter",
        "ALTER TABLE ticket_counter_new RENAME TO ticket_counter",
        "DROP TABLE quarantine_drop",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let after = sqlite_schema(&pool).await;
    pool.close().await;

    let found = differences("before", &before, "after", &after);
    let expected = [
        "table quarantine_drop: only on before",
        "table ticket: column extra: only on after",
        "table ticket: index ticket_citizen: (citizen) on before, (citizen, status) on after",
        "table event: index event_at (at) unique partial: only on after",
        "table mailbox_state: index mailbox_state_uid (last_uid) unique: only on after",
        "table ticket_counter: column year: integer on before, text on after",
        "table ticket_counter: column last_seq: NOT NULL on before, nullable on after",
        "table only_here: only on after",
    ];
    for sentence in expected {
        assert!(
            found.iter().any(|d| d == sentence),
            "missing {sentence:?} among:\n{}",
            report(&found)
        );
    }
    assert_eq!(found.len(), expected.len(), "{}", report(&found));

    // Primary keys and UNIQUE constraints, on two tables that differ only there.
    let table = |primary_key: &[&str], unique: &[&str]| Table {
        primary_key: primary_key.iter().map(|c| c.to_string()).collect(),
        uniques: BTreeSet::from([unique.iter().map(|c| c.to_string()).collect()]),
        ..Table::default()
    };
    let a = Schema::from([("t".to_owned(), table(&["a"], &["b", "c"]))]);
    let b = Schema::from([("t".to_owned(), table(&["a", "b"], &["c"]))]);
    assert_eq!(
        differences(SQLITE, &a, POSTGRES, &b),
        [
            "table t: primary key: (a) on SQLite, (a, b) on PostgreSQL",
            "table t: UNIQUE (b, c): only on SQLite",
            "table t: UNIQUE (c): only on PostgreSQL",
        ]
    );
}
