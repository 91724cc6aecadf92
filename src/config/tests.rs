// figment's Jail hands back its own (large) error type; that is its API, not ours.
#![allow(clippy::result_large_err)]

use super::*;
use figment::Jail;

fn load_in(jail: &Jail, toml: Option<&str>, env: bool) -> Result<Settings, String> {
    let mut builder = Settings::builder();
    if let Some(body) = toml {
        jail.create_file("franchise.toml", body).unwrap();
        builder = builder.config_file(jail.directory().join("franchise.toml"));
    }
    if env {
        builder = builder.env();
    }
    builder.build().map_err(|e| e.to_string())
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = Settings::default();
    assert_eq!(s.workers(), 100);
    assert_eq!(s.import_options().max_depth, 50);
    assert_eq!(s.franchise_ttl, Duration::from_secs(86_400));
    assert_eq!(s.basic_ttl, Duration::from_secs(3_600));
    assert_eq!(s.max_attempts, 5);
    assert_eq!(s.anilist_url(), "https://graphql.anilist.co");
    assert_eq!(s.budget().requests, 30);
    assert_eq!(s.budget().min_spacing, Duration::from_millis(500));
    assert_eq!(s.client().timeout, Duration::from_secs(20));
    assert_eq!(s.database_url(), None);
    assert_eq!(s.listen().to_string(), "127.0.0.1:7878");
    assert!(!s.has_token());
    assert_eq!(crate::ImportOptions::default(), s.import_options());
}

#[test]
fn the_builder_reads_no_environment_unless_asked() {
    Jail::expect_with(|jail| {
        jail.set_env("FRANCHISE_WORKERS", "7");
        assert_eq!(load_in(jail, None, false).unwrap().workers(), 100);
        assert_eq!(load_in(jail, None, true).unwrap().workers(), 7);
        Ok(())
    });
}

#[test]
fn layers_apply_in_order_file_then_env_then_explicit_values() {
    Jail::expect_with(|jail| {
        let file =
            "workers = 3\n[anilist]\nurl = \"http://127.0.0.1:1/\"\nbudget_per_minute = 20\n";
        let s = load_in(jail, Some(file), true).unwrap();
        assert_eq!((s.workers(), s.budget_per_minute()), (3, 20));

        jail.set_env("FRANCHISE_WORKERS", "5");
        jail.set_env("FRANCHISE_ANILIST__URL", "http://127.0.0.1:2/");
        let s = load_in(jail, Some(file), true).unwrap();
        assert_eq!(s.workers(), 5);
        assert_eq!(s.anilist_url(), "http://127.0.0.1:2/");
        assert_eq!(s.budget_per_minute(), 20, "the file still applies");

        jail.create_file("f.toml", file).unwrap();
        let s = Settings::builder()
            .config_file(jail.directory().join("f.toml"))
            .env()
            .workers(2)
            .anilist_url("http://127.0.0.1:3/")
            .budget_per_minute(10)
            .data_dir("/tmp/x")
            .build()
            .unwrap();
        assert_eq!(s.workers(), 2);
        assert_eq!(s.anilist_url(), "http://127.0.0.1:3/");
        assert_eq!(s.budget_per_minute(), 10);
        assert_eq!(s.data_dir(), PathBuf::from("/tmp/x"));
        Ok(())
    });
}

#[test]
fn the_log_and_failpoint_variables_are_not_settings() {
    Jail::expect_with(|jail| {
        jail.set_env("FRANCHISE_LOG", "debug");
        jail.set_env("FRANCHISE_FAILPOINTS", "flusher.commit=error");
        assert!(load_in(jail, None, true).is_ok());
        Ok(())
    });
}

#[test]
fn bad_values_are_named_with_what_would_be_right() {
    Jail::expect_with(|jail| {
        let cases = [
            ("wrokers = 3\n", "wrokers"),
            ("[anilist]\nbudget = 3\n", "budget"),
            ("workers = \"many\"\n", "workers"),
            ("workers = 0\n", "from 1 to 1000"),
            ("[import]\nmax_items = 0\n", "`import.max_items` = 0"),
            ("[queue]\nmax_attempts = -1\n", "queue.max_attempts"),
            ("[freshness]\nfranchise_secs = -5\n", "franchise_secs"),
            ("workers = -2\n", "`workers` = -2"),
            (
                "[anilist]\nbudget_per_minute = 0\n",
                "`anilist.budget_per_minute` = 0",
            ),
            ("[anilist]\ntimeout_secs = 0\n", "anilist.timeout_secs"),
            ("[anilist]\nmax_park_secs = 0\n", "anilist.max_park_secs"),
            (
                "[anilist]\nmax_park_secs = 86401\n",
                "anilist.max_park_secs",
            ),
            ("[anilist]\nurl = \"graphql.anilist.co\"\n", "http(s) URL"),
            ("database_url = \"mysql://x\"\n", "PostgreSQL URL"),
            (
                "database_url = \"postgres://:::::\"\n",
                "a well-formed PostgreSQL URL",
            ),
            ("[serve]\nlisten = \"localhost\"\n", "127.0.0.1:7878"),
            ("[serve]\ntoken = \"short\"\n", "at least 16 characters"),
        ];
        for (body, needle) in cases {
            let err = load_in(jail, Some(body), false).unwrap_err();
            assert!(err.contains(needle), "{body:?} gave {err}");
        }
        jail.set_env("FRANCHISE_WORKERS", "abc");
        let err = load_in(jail, None, true).unwrap_err();
        assert!(
            err.contains("`workers`") && err.contains("\"abc\""),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn every_duration_is_bounded_with_its_key_and_range() {
    Jail::expect_with(|jail| {
        let huge = "18446744073709551615";
        let cases = [
            (
                "FRANCHISE_ANILIST__MIN_SPACING_MS",
                huge,
                "anilist.min_spacing_ms",
            ),
            (
                "FRANCHISE_ANILIST__MIN_SPACING_MS",
                "60001",
                "from 0 to 60000",
            ),
            (
                "FRANCHISE_ANILIST__RETRY_MAX_DELAY_MS",
                "9223372036854775807",
                "retry_max_delay_ms",
            ),
            (
                "FRANCHISE_ANILIST__RETRY_MIN_DELAY_MS",
                "300001",
                "from 0 to 300000",
            ),
            ("FRANCHISE_QUEUE__HEARTBEAT_MS", "0", "from 1000 to 60000"),
            ("FRANCHISE_BATCH_WINDOW_MS", "10001", "batch_window_ms"),
            (
                "FRANCHISE_FRESHNESS__BASIC_SECS",
                "99999999999",
                "freshness.basic_secs",
            ),
            (
                "FRANCHISE_ANILIST__OUTAGE_PAUSE_MAX_SECS",
                "1e300",
                "outage_pause_max_secs",
            ),
            (
                "FRANCHISE_ANILIST__TIMEOUT_SECS",
                "inf",
                "anilist.timeout_secs",
            ),
        ];
        for (key, value, needle) in cases {
            jail.clear_env();
            jail.set_env(key, value);
            let err = load_in(jail, None, true).unwrap_err();
            assert!(err.contains(needle), "{key}={value} gave {err}");
        }
        Ok(())
    });
}

#[test]
fn a_named_config_file_must_exist_and_be_a_small_regular_file() {
    let err = Settings::builder()
        .config_file("/nonexistent/franchise.toml")
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/franchise.toml"),
        "{err}"
    );
    let err = Settings::builder()
        .config_file("/dev/zero")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    let err = Settings::builder().config_file(&big).build().unwrap_err();
    assert!(err.to_string().contains("at most 1048576 bytes"), "{err}");
}

#[test]
fn a_database_url_password_is_not_echoed() {
    for url in [
        "mysql://user:secret@host/db",
        "postgres://user:secret@:::::",
    ] {
        let err = Settings::builder().database_url(url).build().unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(err.to_string().contains("database_url"), "{err}");
    }
}

#[test]
fn a_bad_value_names_its_key_its_variable_and_the_allowed_range_whatever_the_layer() {
    Jail::expect_with(|jail| {
        jail.set_env("FRANCHISE_WORKERS", "abc");
        let err = load_in(jail, None, true).unwrap_err();
        assert!(err.contains("`workers`"), "{err}");
        assert!(err.contains("FRANCHISE_WORKERS"), "{err}");
        assert!(err.contains("\"abc\""), "{err}");
        assert!(err.contains("from 1 to 1000"), "{err}");
        jail.set_env("FRANCHISE_WORKERS", "4");
        jail.set_env("FRANCHISE_ANILIST__TIMEOUT_SECS", "soon");
        let err = load_in(jail, None, true).unwrap_err();
        assert!(err.contains("FRANCHISE_ANILIST__TIMEOUT_SECS"), "{err}");
        assert!(err.contains("more than 0 to 600"), "{err}");
        // A number spelled as text in any layer is still a number.
        jail.set_env("FRANCHISE_ANILIST__TIMEOUT_SECS", "2.5");
        let s = load_in(jail, None, true).unwrap();
        assert_eq!(s.client().timeout, Duration::from_millis(2_500));
        Ok(())
    });
}

#[test]
fn a_broken_config_file_is_named_with_the_line() {
    Jail::expect_with(|jail| {
        let err = load_in(
            jail,
            Some("workers = 4\n[anilist]\nurl = \"http://x\n"),
            false,
        )
        .unwrap_err();
        assert!(err.contains("franchise.toml"), "the file's name: {err}");
        assert!(err.contains("line 3"), "the line: {err}");
        assert!(!err.contains("TOML source string"), "{err}");
        Ok(())
    });
}

#[test]
fn every_request_carries_a_referer_and_a_bad_one_is_refused() {
    let s = Settings::default();
    assert_eq!(s.referer(), "https://crates.io/crates/franchise");
    assert!(s.referer_is_default());
    let mine = Settings::builder()
        .referer("https://my-app.example/")
        .build()
        .unwrap();
    assert_eq!(mine.client().referer, "https://my-app.example/");
    assert!(!mine.referer_is_default());
    for bad in ["", "   ", "line\nbreak", "caf\u{e9}"] {
        let err = Settings::builder()
            .referer(bad)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("anilist.referer"), "{bad:?}: {err}");
        assert!(err.contains("Referer"), "{bad:?}: {err}");
    }
}
