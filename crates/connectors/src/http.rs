//! HTTP datasets: systems with an API (a helpdesk, a CRM). Per resource a
//! method and URL template for finding, exporting and erasing; the base URL
//! from `CUSTODIAN_CONNECTION_<NAME>` and a bearer token from
//! `CUSTODIAN_CONNECTION_<NAME>_TOKEN`; a pooled client, TLS for https
//! URLs; a timeout per call and retries of transient failures. URLs hold
//! identities, so no error or log line carries one: errors name the
//! resource and the status.

use crate::postgres::send;
use custodian_engine::datasets::{
    Applied, BoxFuture, ByHand, ConnectorError, Corrections, Dataset, Erased, ExportItem,
    Identities, KeptField,
};
use custodian_policy::datasets::{Dataset as Declared, Endpoint, Resource};
use custodian_policy::model::Policy;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The largest answer read from one export call.
const MAX_BODY: usize = 16 << 20;
/// Attempts per call before the task's own retry takes over.
const ATTEMPTS: u32 = 3;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Http {
    declared: Declared,
    policy: Arc<Policy>,
    base: String,
    token: Option<String>,
    client: HttpsClient,
    timeout: Duration,
}

impl Http {
    pub fn new(
        declared: Declared,
        policy: Arc<Policy>,
        base: &str,
        token: Option<String>,
    ) -> Result<Http, ConnectorError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ConnectorError::permanent(
                "the HTTP connection's URL is neither http:// nor https://",
            ));
        }
        let tls = rustls_config()?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(Http {
            declared,
            policy,
            base: base.trim_end_matches('/').to_string(),
            token,
            client,
            timeout: Duration::from_secs(10),
        })
    }

    /// The URL of `endpoint` for one identity value.
    fn url(&self, endpoint: &Endpoint, identity: &str, value: &str) -> String {
        let path = endpoint
            .url
            .replace(&format!("{{{identity}}}"), &encode(value));
        if path.starts_with("http://") || path.starts_with("https://") {
            path
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// One call, retried while it fails transiently: the status and body.
    async fn call(
        &self,
        resource: &str,
        endpoint: &Endpoint,
        url: &str,
    ) -> Result<(u16, Bytes), ConnectorError> {
        self.call_with(resource, endpoint, url, None).await
    }

    /// [`Http::call`] with a JSON body.
    async fn call_with(
        &self,
        resource: &str,
        endpoint: &Endpoint,
        url: &str,
        body: Option<&Bytes>,
    ) -> Result<(u16, Bytes), ConnectorError> {
        let mut last = ConnectorError::transient(format!("resource `{resource}`: not tried"));
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            match self.once(resource, endpoint, url, body).await {
                Ok((status, body)) if status >= 500 || status == 429 => {
                    last =
                        ConnectorError::transient(format!("resource `{resource}`: HTTP {status}"));
                    drop(body);
                }
                Ok(answer) => return Ok(answer),
                Err(e) if e.transient => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn once(
        &self,
        resource: &str,
        endpoint: &Endpoint,
        url: &str,
        body: Option<&Bytes>,
    ) -> Result<(u16, Bytes), ConnectorError> {
        let method = hyper::Method::from_bytes(endpoint.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ConnectorError::permanent(format!("resource `{resource}`: bad method")))?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.cloned().unwrap_or_default()))
            .map_err(|_| {
                ConnectorError::permanent(format!("resource `{resource}`: the URL is not usable"))
            })?;
        let answer = async {
            let response = self.client.request(request).await.map_err(|e| {
                let why = if e.is_connect() {
                    "cannot connect"
                } else {
                    "the call failed"
                };
                ConnectorError::transient(format!("resource `{resource}`: {why}"))
            })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|_| {
                    ConnectorError::permanent(format!(
                        "resource `{resource}`: the answer could not be read (or is over {MAX_BODY} bytes)"
                    ))
                })?
                .to_bytes();
            Ok::<_, ConnectorError>((status, body))
        };
        tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| ConnectorError::transient(format!("resource `{resource}`: timed out")))?
    }

    fn values<'a>(&self, r: &Resource, who: &'a Identities) -> Vec<&'a String> {
        who.get(r.identity.as_str())
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    }

    /// Whether the system knows the person under `value`.
    async fn found(&self, r: &Resource, value: &str) -> Result<bool, ConnectorError> {
        let Some(find) = &r.find else {
            return Ok(true);
        };
        let url = self.url(find, &r.identity, value);
        match self.call(&r.name, find, &url).await? {
            (200..=299, _) => Ok(true),
            (404 | 410, _) => Ok(false),
            (status, _) => Err(ConnectorError::permanent(format!(
                "resource `{}`: find answered HTTP {status}",
                *r.name
            ))),
        }
    }
}

/// TLS on ring (the workspace's one provider), checked against the
/// Mozilla roots.
fn rustls_config() -> Result<rustls::ClientConfig, ConnectorError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectorError::permanent(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Percent-encodes all but the unreserved characters (RFC 3986).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Dataset for Http {
    fn id(&self) -> &str {
        &self.declared.id
    }

    fn system(&self) -> &'static str {
        "http"
    }

    fn locate<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<u64, ConnectorError>> {
        Box::pin(async move {
            let mut n = 0;
            for r in &self.declared.resources {
                for v in self.values(r, who) {
                    n += u64::from(self.found(r, v).await?);
                }
            }
            Ok(n)
        })
    }

    fn export<'a>(
        &'a self,
        who: &'a Identities,
        out: mpsc::Sender<ExportItem>,
    ) -> BoxFuture<'a, Result<u64, ConnectorError>> {
        Box::pin(async move {
            let mut total = 0;
            for r in &self.declared.resources {
                let mut header = Some(ExportItem::Table {
                    table: r.name.to_string(),
                    columns: vec![("answer".into(), r.category.to_string())],
                });
                for v in self.values(r, who) {
                    if !self.found(r, v).await? {
                        continue;
                    }
                    let url = self.url(&r.export, &r.identity, v);
                    let (status, body) = self.call(&r.name, &r.export, &url).await?;
                    match status {
                        200..=299 => {
                            if let Some(h) = header.take() {
                                send(&out, h).await?;
                            }
                            let text = String::from_utf8_lossy(&body).into_owned();
                            send(&out, ExportItem::Row(vec![Some(text)])).await?;
                            total += 1;
                        }
                        404 | 410 => {}
                        status => {
                            return Err(ConnectorError::permanent(format!(
                                "resource `{}`: export answered HTTP {status}",
                                *r.name
                            )));
                        }
                    }
                }
            }
            Ok(total)
        })
    }

    fn erase<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<Erased, ConnectorError>> {
        Box::pin(async move {
            let mut erased = Erased::default();
            for r in &self.declared.resources {
                let mut n = 0;
                if let Some(erase) = &r.erase {
                    for v in self.values(r, who) {
                        let url = self.url(erase, &r.identity, v);
                        // Gone already is erased: a rerun changes nothing.
                        match self.call(&r.name, erase, &url).await? {
                            (200..=299, _) => n += 1,
                            (404 | 410, _) => {}
                            (status, _) => {
                                return Err(ConnectorError::permanent(format!(
                                    "resource `{}`: erase answered HTTP {status}",
                                    *r.name
                                )));
                            }
                        }
                    }
                }
                if let Some(g) = &r.ground {
                    erased.kept.push(KeptField {
                        field: r.name.to_string(),
                        purpose: g.to_string(),
                        ground: custodian_policy::datasets::ground_text(&self.policy, g, None)
                            .unwrap_or_else(|| g.to_string()),
                    });
                }
                erased.changed.push((r.name.to_string(), n));
            }
            Ok(erased)
        })
    }

    fn rectify<'a>(
        &'a self,
        who: &'a Identities,
        corrections: &'a Corrections,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        Box::pin(async move {
            // The corrected values by vault field, as the system's API takes them.
            let body = serde_json::to_vec(corrections)
                .map(Bytes::from)
                .map_err(|_| ConnectorError::permanent("the corrections could not be written"))?;
            let mut applied = Applied::default();
            for r in &self.declared.resources {
                // The record is found under the identity it had: a corrected
                // identity's new value is where it will be found afterwards.
                let new = corrections.get(r.identity.as_str());
                let values: Vec<&String> = self
                    .values(r, who)
                    .into_iter()
                    .filter(|v| Some(*v) != new)
                    .collect();
                let n = self
                    .each(r, r.rectify.as_ref(), &values, Some(&body), "rectify")
                    .await?;
                match n {
                    Some(n) => applied.changed.push((r.name.to_string(), n)),
                    None if !values.is_empty() => applied.by_hand.push(ByHand {
                        what: r.name.to_string(),
                        why:
                            "no rectify endpoint declared: not rectified automatically: act by hand"
                                .into(),
                    }),
                    None => {}
                }
            }
            Ok(applied)
        })
    }

    fn restrict<'a>(
        &'a self,
        who: &'a Identities,
        restricted: bool,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        Box::pin(async move {
            let mut applied = Applied::default();
            for r in &self.declared.resources {
                let values = self.values(r, who);
                let (endpoint, what) = if restricted {
                    (r.restrict.as_ref(), "restrict")
                } else {
                    (r.lift.as_ref(), "lift")
                };
                match self.each(r, endpoint, &values, None, what).await? {
                    Some(n) => applied.changed.push((r.name.to_string(), n)),
                    None if !values.is_empty() => applied.by_hand.push(ByHand {
                        what: r.name.to_string(),
                        why: format!(
                            "no {what} endpoint declared: {}: act by hand",
                            if restricted {
                                "not restricted automatically"
                            } else {
                                "restriction not lifted automatically"
                            }
                        ),
                    }),
                    None => {}
                }
            }
            Ok(applied)
        })
    }
}

impl Http {
    /// Calls `endpoint` once per identity value: how many answered 2xx
    /// (404 and 410: the system does not hold the person under it), or
    /// None when the resource declares no such endpoint.
    async fn each(
        &self,
        r: &Resource,
        endpoint: Option<&Endpoint>,
        values: &[&String],
        body: Option<&Bytes>,
        what: &str,
    ) -> Result<Option<u64>, ConnectorError> {
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        let mut n = 0;
        for v in values {
            let url = self.url(endpoint, &r.identity, v);
            match self.call_with(&r.name, endpoint, &url, body).await? {
                (200..=299, _) => n += 1,
                (404 | 410, _) => {}
                (status, _) => {
                    return Err(ConnectorError::permanent(format!(
                        "resource `{}`: {what} answered HTTP {status}",
                        *r.name
                    )));
                }
            }
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identities_are_percent_encoded() {
        assert_eq!(super::encode("a+b@x.org/?"), "a%2Bb%40x.org%2F%3F");
    }
}
