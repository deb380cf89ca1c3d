//! The shop the connectors bench runs against, seeded inside each system
//! (PostgreSQL's `generate_series`, MariaDB's sequence engine, Redis
//! pipelined) in a database of its own (`custodian_bench_shop`, key prefix
//! `custodian-bench:`) and kept between runs: a marker records the shape it
//! was seeded with and the next person not used yet, and each run reserves
//! its people before it starts, since an erased person cannot be erased
//! again.

use crate::bench::BenchArgs;
use mysql_async::prelude::Queryable;
use std::time::Instant;

/// Raised whenever the seeded tables or keys change shape: a marker that
/// differs (or is missing) has the data seeded again.
pub(crate) const SHAPE_VERSION: u32 = 2;
/// The bench's own database (PostgreSQL and MariaDB), never a test's.
pub(crate) const DATABASE: &str = "custodian_bench_shop";
/// The bench's own Redis keys.
pub(crate) const PREFIX: &str = "custodian-bench";

pub(crate) fn email(i: u64) -> String {
    format!("person{i}@bench.example")
}

/// `url` with its database (the path) replaced by `database`.
pub(crate) fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base
        .get(authority_start..)
        .and_then(|rest| rest.find('/'))
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", base.get(..path_start).unwrap_or(base));
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pub(crate) fn shape(args: &BenchArgs) -> String {
    format!(
        "v{SHAPE_VERSION} customers={} orders={}",
        args.shop_customers, args.shop_orders
    )
}

// ---------------------------------------------------------------- PostgreSQL

pub(crate) async fn pg_connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL: cannot connect: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None => format!("PostgreSQL: {e}"),
    }
}

/// The marker's next free person, or None when the shop must be seeded.
pub(crate) async fn pg_marker(
    db: &tokio_postgres::Client,
    shape: &str,
) -> Result<Option<i64>, String> {
    let exists = db
        .query_one("SELECT to_regclass('bench_marker') IS NOT NULL", &[])
        .await
        .map_err(pg_err)?;
    if !exists.try_get::<_, bool>(0).map_err(pg_err)? {
        return Ok(None);
    }
    let row = db
        .query_opt("SELECT shape, next_slot FROM bench_marker", &[])
        .await
        .map_err(pg_err)?;
    Ok(match row {
        Some(r) if r.try_get::<_, String>(0).map_err(pg_err)? == shape => {
            Some(r.try_get(1).map_err(pg_err)?)
        }
        _ => None,
    })
}

/// Makes the bench's database if need be and seeds it when its marker
/// differs; returns the database's URL and the next free person.
pub(crate) async fn pg_prepare(admin_url: &str, args: &BenchArgs) -> Result<(String, i64), String> {
    let admin = pg_connect(admin_url).await?;
    let found = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .map_err(pg_err)?;
    if found.is_none() {
        admin
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .map_err(pg_err)?;
    }
    let url = with_database(admin_url, DATABASE);
    let db = pg_connect(&url).await?;
    let shape = shape(args);
    if let Some(next) = pg_marker(&db, &shape).await? {
        return Ok((url, next));
    }
    let (n, m) = (args.shop_customers, args.shop_orders);
    println!("seeding PostgreSQL: {n} customers, {m} orders ...");
    let t = Instant::now();
    // Constraints and indexes come after the rows: built once, not row by row.
    db.batch_execute(&format!(
        "DROP TABLE IF EXISTS bench_marker, orders, customers CASCADE;
         SET synchronous_commit = off;
         SET maintenance_work_mem = '512MB';
         CREATE TABLE customers (id BIGINT NOT NULL, email VARCHAR(200), full_name VARCHAR(200) NOT NULL,
             phone VARCHAR(100), postal_address VARCHAR(300));
         CREATE TABLE orders (id BIGINT NOT NULL, customer_id BIGINT NOT NULL, order_reference VARCHAR(40) NOT NULL,
             order_total NUMERIC(10,2) NOT NULL, delivery_note VARCHAR(200));
         INSERT INTO customers SELECT i, 'person' || i || '@bench.example', 'Bench Person ' || i,
             '+44 7700 ' || lpad(i::text, 7, '0'), i || ' Benchmark Road, Testbury TB1 1AA'
             FROM generate_series(1, {n}) i;
         INSERT INTO orders SELECT j, (j % {n}) + 1, 'ORD-' || j, (j % 997) + 0.99, 'leave with the neighbour'
             FROM generate_series(1, {m}) j;
         ALTER TABLE customers ADD PRIMARY KEY (id);
         ALTER TABLE orders ADD PRIMARY KEY (id);
         ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);
         CREATE INDEX customers_email ON customers (email);
         CREATE INDEX customers_phone ON customers (phone);
         CREATE INDEX orders_customer ON orders (customer_id);"
    ))
    .await
    .map_err(pg_err)?;
    // VACUUM cannot run inside the implicit transaction of a batch.
    db.batch_execute("VACUUM ANALYZE customers")
        .await
        .map_err(pg_err)?;
    db.batch_execute("VACUUM ANALYZE orders")
        .await
        .map_err(pg_err)?;
    // The marker last: a seeding cut short is seeded again.
    db.batch_execute("CREATE TABLE bench_marker (shape TEXT NOT NULL, next_slot BIGINT NOT NULL)")
        .await
        .map_err(pg_err)?;
    db.execute(
        "INSERT INTO bench_marker VALUES ($1, 0)",
        &[&shape.as_str()],
    )
    .await
    .map_err(pg_err)?;
    println!("seeded PostgreSQL in {:.0} s", t.elapsed().as_secs_f64());
    Ok((url, 0))
}

pub(crate) async fn pg_reserve(url: &str, next: i64) -> Result<(), String> {
    let db = pg_connect(url).await?;
    db.execute("UPDATE bench_marker SET next_slot = $1", &[&next])
        .await
        .map_err(pg_err)?;
    Ok(())
}

// ------------------------------------------------------------------- MariaDB

pub(crate) fn my_err(e: mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("MariaDB: {}", s.message),
        other => format!("MariaDB: {other}"),
    }
}

pub(crate) async fn my_conn(url: &str) -> Result<mysql_async::Conn, String> {
    let opts = mysql_async::Opts::from_url(url).map_err(|_| "MariaDB: the URL is not usable")?;
    mysql_async::Conn::new(opts).await.map_err(my_err)
}

pub(crate) async fn my_prepare(admin_url: &str, args: &BenchArgs) -> Result<(String, i64), String> {
    let mut admin = my_conn(admin_url).await?;
    admin
        .query_drop(format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"))
        .await
        .map_err(my_err)?;
    drop(admin);
    let url = with_database(admin_url, DATABASE);
    let mut db = my_conn(&url).await?;
    let shape = shape(args);
    let marker: Option<(String, i64)> = match db
        .query_first("SELECT shape, next_slot FROM bench_marker")
        .await
    {
        Ok(row) => row,
        // No marker table yet: seed.
        Err(mysql_async::Error::Server(s)) if s.code == 1146 => None,
        Err(e) => return Err(my_err(e)),
    };
    if let Some((found, next)) = marker {
        if found == shape {
            return Ok((url, next));
        }
    }
    let (n, m) = (args.shop_customers, args.shop_orders);
    println!("seeding MariaDB: {n} customers, {m} orders ...");
    let t = Instant::now();
    let statements = [
        "DROP TABLE IF EXISTS bench_marker, orders, customers".to_string(),
        "SET SESSION foreign_key_checks = 0, unique_checks = 0".into(),
        "CREATE TABLE customers (id BIGINT NOT NULL PRIMARY KEY, email VARCHAR(200), full_name VARCHAR(200) NOT NULL, \
         phone VARCHAR(100), postal_address VARCHAR(300)) ENGINE=InnoDB"
            .into(),
        "CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, order_reference VARCHAR(40) NOT NULL, \
         order_total DECIMAL(10,2) NOT NULL, delivery_note VARCHAR(200)) ENGINE=InnoDB"
            .into(),
        format!(
            "INSERT INTO customers SELECT seq, CONCAT('person', seq, '@bench.example'), CONCAT('Bench Person ', seq), \
             CONCAT('+44 7700 ', LPAD(seq, 7, '0')), CONCAT(seq, ' Benchmark Road, Testbury TB1 1AA') FROM seq_1_to_{n}"
        ),
    ];
    for s in &statements {
        db.query_drop(s).await.map_err(my_err)?;
    }
    // Orders in slices of a million rows: transactions of bounded size.
    let mut from = 1usize;
    while from <= m {
        let to = (from + 999_999).min(m);
        db.query_drop(format!(
            "INSERT INTO orders SELECT seq, (seq % {n}) + 1, CONCAT('ORD-', seq), (seq % 997) + 0.99, 'leave with the neighbour' \
             FROM seq_{from}_to_{to}"
        ))
        .await
        .map_err(my_err)?;
        from = to + 1;
    }
    for s in [
        "ALTER TABLE customers ADD INDEX customers_email (email), ADD INDEX customers_phone (phone)",
        "ALTER TABLE orders ADD INDEX orders_customer (customer_id)",
        "ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "SET SESSION foreign_key_checks = 1, unique_checks = 1",
        "ANALYZE TABLE customers, orders",
        "CREATE TABLE bench_marker (shape VARCHAR(200) NOT NULL, next_slot BIGINT NOT NULL) ENGINE=InnoDB",
    ] {
        db.query_drop(s).await.map_err(my_err)?;
    }
    db.exec_drop("INSERT INTO bench_marker VALUES (?, 0)", (shape,))
        .await
        .map_err(my_err)?;
    println!("seeded MariaDB in {:.0} s", t.elapsed().as_secs_f64());
    Ok((url, 0))
}

pub(crate) async fn my_reserve(url: &str, next: i64) -> Result<(), String> {
    let mut db = my_conn(url).await?;
    db.exec_drop("UPDATE bench_marker SET next_slot = ?", (next,))
        .await
        .map_err(my_err)
}

// --------------------------------------------------------------------- Redis

pub(crate) fn redis_err(e: redis::RedisError) -> String {
    format!("Redis: {:?}", e.kind())
}

pub(crate) async fn redis_conn(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    redis::Client::open(url)
        .map_err(|_| "Redis: the URL is not usable".to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(redis_err)
}

/// The bench's Redis keys go to a database of their own (1, unless the
/// URL names one): a key pattern with `*` is found by a SCAN of the whole
/// database, and a million bench keys in database 0 would slow every
/// other user's scans there.
pub(crate) fn redis_database(url: &str) -> String {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path = base
        .get(authority_start..)
        .and_then(|rest| rest.find('/').map(|i| rest.get(i + 1..).unwrap_or("")));
    match path {
        Some(db) if !db.is_empty() => url.to_string(),
        _ => with_database(url, "1"),
    }
}

pub(crate) fn session_key(i: u64) -> String {
    format!("{PREFIX}:session:{}", email(i))
}

pub(crate) async fn redis_prepare(url: &str, args: &BenchArgs) -> Result<i64, String> {
    let mut conn = redis_conn(url).await?;
    let marker = format!("{PREFIX}:marker");
    let shape = shape(args);
    let (found, next): (Option<String>, Option<i64>) = redis::cmd("HMGET")
        .arg(&marker)
        .arg("shape")
        .arg("next_slot")
        .query_async(&mut conn)
        .await
        .map_err(redis_err)?;
    if let (Some(found), Some(next)) = (found, next) {
        if found == shape {
            return Ok(next);
        }
    }
    let n = args.shop_customers as u64;
    println!("seeding Redis: {n} session hashes ...");
    let t = Instant::now();
    // What an earlier shape left, by the bench's own prefix only.
    let mut cursor: u64 = 0;
    for _ in 0..100_000_000u64 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}:*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if !keys.is_empty() {
            let () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut i = 1u64;
    while i <= n {
        let mut pipe = redis::pipe();
        for j in i..=(i + 9_999).min(n) {
            pipe.cmd("HSET")
                .arg(session_key(j))
                .arg("ip")
                .arg(format!("198.51.100.{}", j % 256))
                .arg("agent")
                .arg("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0")
                .arg("started_at")
                .arg("2026-11-30T09:00:00Z")
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.map_err(redis_err)?;
        i += 10_000;
    }
    let () = redis::cmd("HSET")
        .arg(&marker)
        .arg("shape")
        .arg(&shape)
        .arg("next_slot")
        .arg(0)
        .query_async(&mut conn)
        .await
        .map_err(redis_err)?;
    println!("seeded Redis in {:.0} s", t.elapsed().as_secs_f64());
    Ok(0)
}

pub(crate) async fn redis_reserve(url: &str, next: i64) -> Result<(), String> {
    let mut conn = redis_conn(url).await?;
    redis::cmd("HSET")
        .arg(format!("{PREFIX}:marker"))
        .arg("next_slot")
        .arg(next)
        .query_async(&mut conn)
        .await
        .map_err(redis_err)
}
