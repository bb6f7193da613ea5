use crate::helpers::{spawn_app, spawn_app_on, status_json};

#[tokio::test]
async fn health_is_200_when_the_database_and_queue_answer() {
    let app = spawn_app().await;

    let resp = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();

    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["database"], "healthy");
    assert_eq!(body["queue"], "healthy");
    assert!(body["timestamp"].as_str().unwrap().contains('T'));
}

#[tokio::test]
async fn health_is_503_naming_the_database_when_it_is_stopped() {
    let cluster = gpudev_testkit::private_cluster().await;
    let db = cluster.test_db().await;
    let app = spawn_app_on(db, &[]).await;

    cluster.stop().await;
    let health = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    let live = app
        .http
        .get(format!("{}/livez", app.base))
        .send()
        .await
        .unwrap();

    let (status, body) = status_json(health).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert!(
        body["database"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{body}"
    );
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(
        live.status().as_u16(),
        200,
        "liveness does not depend on the database"
    );

    cluster.start().await;
    let mut healthy = false;
    for _ in 0..50 {
        let r = app
            .http
            .get(format!("{}/health", app.base))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(healthy, "health recovers once the database is back");
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_a_missing_one_is_generated() {
    let app = spawn_app().await;

    let echoed = app
        .http
        .get(format!("{}/livez", app.base))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    let generated = app
        .http
        .get(format!("{}/livez", app.base))
        .send()
        .await
        .unwrap();

    assert_eq!(echoed.headers()["x-request-id"], "trace-abc-123");
    assert_eq!(generated.headers()["x-request-id"].len(), 36);
}

#[tokio::test]
async fn readiness_fails_while_draining() {
    let app = crate::helpers::spawn_app_with(&[("SHUTDOWN_DRAIN_SECONDS", "2")]).await;
    let before = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    let shutdown = app.shutdown.clone();

    let stopping = tokio::spawn(async move { shutdown.shutdown().await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let during = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();

    assert_eq!(before.status().as_u16(), 200);
    assert_eq!(during.status().as_u16(), 503);
    stopping.await.unwrap();
}

#[tokio::test]
async fn unknown_paths_answer_404_with_a_json_detail_and_root_lists_links() {
    let app = spawn_app().await;

    let (status, body) = status_json(
        app.http
            .get(format!("{}/nope", app.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (root_status, root) =
        status_json(app.http.get(format!("{}/", app.base)).send().await.unwrap()).await;

    assert_eq!(status, 404);
    assert!(
        body["detail"].as_str().unwrap().contains("not found")
            || body["detail"].as_str().unwrap().contains("no such")
    );
    assert_eq!(body["code"], "not_found");
    assert_eq!(root_status, 200);
    assert_eq!(root["health"], "/health");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.http
        .get(format!("{}/livez", app.base))
        .send()
        .await
        .unwrap();

    let text = app.metrics_text().await;

    assert!(
        text.contains(
            "gpudev_api_http_requests_total{method=\"GET\",route=\"/livez\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("gpudev_api_db_pool_connections"));
}
