//! Property test of the API's request parsing: arbitrary methods, paths, queries and bodies
//! sent over real HTTP get an answer below 500 (the client's mistake is a 4xx), and the
//! server is still there afterwards.

mod common;

use std::time::Duration;

use common::api::{TestApp, spawn_app};
use common::run::fake;
use fake_anilist::{Faults, Latency, RateModel, World};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = reqwest::Method> {
    prop_oneof![
        3 => Just(reqwest::Method::GET),
        3 => Just(reqwest::Method::POST),
        1 => Just(reqwest::Method::PUT),
        1 => Just(reqwest::Method::DELETE),
        1 => Just(reqwest::Method::PATCH),
        1 => Just(reqwest::Method::HEAD),
        1 => Just(reqwest::Method::OPTIONS),
    ]
}

/// Paths shaped like the routes (with good and bad ids and queries) and random ones.
fn path() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        (1u32..8).prop_map(|n| n.to_string()),
        "-?[0-9]{1,22}",
        "[a-zA-Z0-9%._~+-]{0,12}",
    ];
    let route = prop::sample::select(vec![
        "/api/imports/{}",
        "/api/imports/{}/cancel",
        "/api/imports/{}/retry",
        "/api/anime/{}",
        "/api/anime/{}/open",
        "/api/franchise/{}",
        "/franchise/{}",
        "/fragments/franchise/{}",
        "/assets/{}",
        "/api/imports",
        "/api/status",
        "/fragments/status",
        "/",
    ]);
    let query = prop_oneof![
        Just(String::new()),
        "\\?(state|limit|timeout_secs|import_id|x)=[a-z0-9%_-]{0,12}(&[a-z_]{1,8}=[a-z0-9]{0,6}){0,2}",
    ];
    let structured =
        (route, id, query).prop_map(|(r, id, q)| format!("{}{q}", r.replace("{}", &id)));
    let random = "/[a-zA-Z0-9%/?=&._~:+-]{0,30}";
    prop_oneof![4 => structured, 1 => random]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let json_value = prop_oneof![
        Just("null".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (1i64..8).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "\"[^\"\\\\]{0,12}\"",
        Just("[]".to_string()),
        Just("{}".to_string()),
    ];
    let key = prop::sample::select(vec!["root", "depth", "max_items", "force_refresh", "x", ""]);
    let object = prop::collection::vec((key, json_value), 0..5).prop_map(|fields| {
        let inner: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!("{{{}}}", inner.join(", ")).into_bytes()
    });
    prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..300),
        object,
    ]
}

/// `POST /api/imports` with bodies near the valid shape: a root (good or bad) and some of the
/// optional fields with good or bad values.
fn import_request() -> impl Strategy<Value = (reqwest::Method, String, Vec<u8>)> {
    let root = prop_oneof![
        3 => (1i64..8).prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("\"12\"".to_string()),
        1 => Just("null".to_string()),
    ];
    let extra = prop::collection::vec(
        prop_oneof![
            (0u32..1200).prop_map(|n| format!("\"depth\": {n}")),
            (0u64..5_000_000_000).prop_map(|n| format!("\"max_items\": {n}")),
            any::<bool>().prop_map(|b| format!("\"force_refresh\": {b}")),
            Just("\"force_refresh\": 1".to_string()),
        ],
        0..3,
    );
    (root, extra).prop_map(|(root, extra)| {
        let mut fields = vec![format!("\"root\": {root}")];
        fields.extend(extra);
        (
            reqwest::Method::POST,
            "/api/imports".to_string(),
            format!("{{{}}}", fields.join(", ")).into_bytes(),
        )
    })
}

fn app(rt: &tokio::runtime::Runtime) -> TestApp {
    rt.block_on(async {
        let world = World::single_franchise(5, 31);
        let latency = Latency::new(Duration::from_millis(1), Duration::ZERO);
        let fake = fake(world, RateModel::disabled(), latency, Faults::default()).await;
        spawn_app(fake, None).await
    })
}

#[test]
fn arbitrary_requests_get_a_4xx_never_a_5xx_or_a_crash() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = app(&rt);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let cases = prop_oneof![1 => import_request(), 4 => (method(), path(), body())];
    let result = runner.run(&cases, |(method, path, body)| {
        let Ok(url) = reqwest::Url::parse(&format!("{}{}", app.url.trim_end_matches('/'), path))
        else {
            return Ok(()); // not a URL a client could send
        };
        let status = rt.block_on(async {
            let response = app
                .http
                .request(method.clone(), url)
                .header("content-type", "application/json")
                .body(body.clone())
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .map_err(|e| TestCaseError::fail(format!("{method} {path}: {e}")))?;
            Ok::<_, TestCaseError>(response.status())
        })?;
        *seen.lock().unwrap().entry(status.as_u16()).or_default() += 1;
        prop_assert!(
            !status.is_server_error(),
            "{method} {path} {:?} → {status}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The cases reached the handlers, not only the router's 404s.
    let seen = seen.into_inner().unwrap();
    eprintln!("statuses: {seen:?}");
    for status in [200, 202, 400, 404, 405] {
        assert!(seen.contains_key(&status), "no {status} among {seen:?}");
    }
    // Still serving.
    let status = rt.block_on(async {
        app.http
            .get(format!("{}api/status", app.url))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    rt.block_on(app.stop());
}

/// One raw HTTP/1.1 request (reqwest would not send a second Host or a bad one): the
/// status, or `None` if the server closed the connection without one.
async fn raw_status(url: &str, headers: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
    let request = format!("GET /api/status HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn hostile_host_headers_and_oversized_headers_get_a_4xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = app(&rt);
    let port = app
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let big = "x".repeat(200 * 1024);
    let cases: Vec<(String, Vec<u16>)> = vec![
        (format!("Host: 127.0.0.1:{port}\r\n"), vec![200]),
        ("Host: localhost:1@evil.example\r\n".into(), vec![400]),
        (
            format!("Host: 127.0.0.1:{port}.evil.example\r\n"),
            vec![400],
        ),
        (
            format!("Host: 127.0.0.1:{port}\r\nHost: evil.example\r\n"),
            vec![400],
        ),
        (
            format!("Host: 127.0.0.1:{port}\r\nX-Big: {big}\r\n"),
            vec![431],
        ),
    ];
    for (headers, want) in &cases {
        let got = rt.block_on(raw_status(&app.url, headers));
        let shown: String = headers.chars().take(80).collect();
        match got {
            Some(status) => assert!(want.contains(&status), "{shown:?} → {status}"),
            // A server may close on an oversized header instead of answering.
            None => assert!(headers.len() > 100_000, "{shown:?} → closed"),
        }
    }
    // Arbitrary text after a loopback name: 200 only for an optional numeric port.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let hosts = (
        prop_oneof![Just("127.0.0.1"), Just("localhost"), Just("[::1]")],
        prop_oneof![3 => Just(":"), 1 => Just("@"), 1 => Just(".")],
        "[:0-9a-z@.\\]\\[-]{0,12}",
    );
    let result = runner.run(&hosts, |(name, separator, rest)| {
        let suffix = format!("{separator}{rest}");
        let status = rt
            .block_on(raw_status(&app.url, &format!("Host: {name}{suffix}\r\n")))
            .ok_or_else(|| TestCaseError::fail(format!("{name}{suffix}: no answer")))?;
        let port_ok = suffix.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
        if port_ok {
            prop_assert_eq!(status, 200, "{}{}", name, suffix);
        } else {
            prop_assert!(
                (400..500).contains(&status),
                "{}{} → {}",
                name,
                suffix,
                status
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    rt.block_on(app.stop());
}
