//! The keyed hash that erasure writes is computed inside the database;
//! here, on the machine's real PostgreSQL and MariaDB, it is checked to be
//! HMAC-SHA256 exactly as computed here (so both dialects agree, and a
//! value hashed in one system links to the same value hashed in another
//! under the same key). Runs where `CUSTODIAN_TEST_POSTGRES_URL` and
//! `CUSTODIAN_TEST_MARIADB_URL` are set; in CI a missing one is a failure.

use custodian_connectors::mysql::My;
use custodian_connectors::postgres::Pg;
use custodian_connectors::relational::{Dialect, Param, hashed_value, padded_keys};
use mysql_async::prelude::Queryable;
use std::io::Write as _;

fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "the keyed-hash suite must run in CI: {var} is not set"
            );
            let _ = writeln!(std::io::stderr(), "SKIPPED: keyed hash: {var} is not set");
            None
        }
    }
}

const VALUES: &[&str] = &["+44 7700 900123", "Zoë O'Brien", ""];

fn bytes(p: &Param) -> Vec<u8> {
    match p {
        Param::Bytes(b) => b.clone(),
        Param::Text(t) => t.clone().into_bytes(),
        Param::List(_) => Vec::new(),
    }
}

#[tokio::test]
async fn postgres_computes_the_same_hmac() {
    let Some(url) = service("CUSTODIAN_TEST_POSTGRES_URL") else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let key = [42u8; 32];
    let (ipad, opad) = padded_keys(&key);
    // The value is parameter 1; the dialect adds the two padded keys.
    let mut params = vec![Param::Text(String::new())];
    let sql = format!("SELECT {}", Pg.hmac("$1::text", &ipad, &opad, &mut params));
    for value in VALUES {
        let ipad = bytes(&params[1]);
        let opad = bytes(&params[2]);
        let row = client
            .query_one(&sql, &[value, &ipad, &opad])
            .await
            .unwrap();
        let got: String = row.get(0);
        assert_eq!(got, hashed_value(&key, value), "{value}");
    }
}

#[tokio::test]
async fn mariadb_computes_the_same_hmac() {
    let Some(url) = service("CUSTODIAN_TEST_MARIADB_URL") else {
        return;
    };
    let pool = mysql_async::Pool::new(url.as_str());
    let mut conn = pool.get_conn().await.unwrap();
    let key = [42u8; 32];
    let (ipad, opad) = padded_keys(&key);
    // The dialect pushes the keys in the order its SQL names them; the
    // value's placeholder comes last in the text.
    let mut params = Vec::new();
    let sql = format!("SELECT {}", My.hmac("?", &ipad, &opad, &mut params));
    for value in VALUES {
        let mut values: Vec<mysql_async::Value> = params
            .iter()
            .map(|p| mysql_async::Value::Bytes(bytes(p)))
            .collect();
        values.push(mysql_async::Value::Bytes(value.as_bytes().to_vec()));
        let got: Option<String> = conn
            .exec_first(sql.as_str(), mysql_async::Params::Positional(values))
            .await
            .unwrap();
        assert_eq!(got.unwrap(), hashed_value(&key, value), "{value}");
    }
    drop(conn);
    pool.disconnect().await.unwrap();
}
