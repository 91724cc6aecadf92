//! A fresh PostgreSQL database per test on the server `TEST_DATABASE_URL` names (default
//! `postgres://postgres@127.0.0.1:5432/test`; `.ci/run` sets it and starts the server),
//! dropped when the guard goes.

use sqlx::PgPool;

pub struct TestDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

/// A pool on the test server that gives up within 4 s (sqlx waits 30 s by default), so a
/// missing server fails each test quickly.
async fn admin_pool(url: &str) -> Result<PgPool, sqlx::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(4))
        .connect(url)
        .await
}

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = server_url();
        let admin = admin_pool(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL server at {admin_url} within 4 s ({e}): set \
                 TEST_DATABASE_URL to a server the tests may create databases on; .ci/run sets \
                 it and starts the local server"
            )
        });
        let name = format!("franchise_it_{:016x}", rand::random::<u64>());
        // The name is ours (hex digits), never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Self {
            url: Self::url_for(&admin_url, &name),
            admin_url,
            name,
        }
    }

    fn url_for(admin_url: &str, name: &str) -> String {
        let mut url = reqwest::Url::parse(admin_url).unwrap();
        url.set_path(name);
        url.to_string()
    }

    /// The same database reached through `addr` (a proxy) instead of the server's own port.
    pub fn url_through(&self, addr: std::net::SocketAddr) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_host(Some(&addr.ip().to_string())).unwrap();
        url.set_port(Some(addr.port())).unwrap();
        url.to_string()
    }

    /// The server's address, for a proxy in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let url = reqwest::Url::parse(&self.url).unwrap();
        let host = url.host_str().unwrap_or("127.0.0.1");
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", url.port().unwrap_or(5432))
            .parse()
            .unwrap()
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(admin) = admin_pool(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}
