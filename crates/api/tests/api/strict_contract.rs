//! The OpenAPI document is exactly as strict as the server: what it calls valid is accepted, what
//! the server refuses the document forbids, and the answers outside the handlers (an undeclared
//! method, a body too large for a route that reads its own) are the documented JSON errors.

use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, status_json};

#[tokio::test]
async fn an_undeclared_method_on_a_documented_path_is_405_with_allow_and_the_error_body() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("alice", Role::User).await;
    let trace = Method::from_bytes(b"TRACE").unwrap();
    let job = "/v1/jobs/6f1c2d9e-3b4a-4c5d-8e7f-0a1b2c3d4e5f";
    for (method, path, allow) in [
        (trace.clone(), "/v1/jobs", "GET"),
        (trace.clone(), "/health", "GET"),
        (trace.clone(), "/v1/auth/aws-login", "POST"),
        (Method::PUT, "/v1/keys/rotate", "POST"),
        // Not taken for a key id: only digits are.
        (Method::DELETE, "/v1/keys/rotate", "POST"),
        (Method::PUT, job, "GET"),
        (Method::PATCH, "/v1/me/ssh-keys", "GET, PUT"),
    ] {
        let resp = app.call(method.clone(), path, Some(&key), None).await;
        let allowed = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let (status, body) = status_json(resp).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(allowed.as_deref(), Some(allow), "{method} {path}");
        assert_eq!(content_type, "application/json", "{method} {path}");
        assert_eq!(body["code"], "method_not_allowed", "{method} {path}");
        assert!(
            body["detail"].as_str().unwrap().contains(method.as_str()),
            "{body}"
        );
    }

    // A path the document does not have stays 404.
    let (status, body) = status_json(app.call(trace, "/v1/nowhere", Some(&key), None).await).await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
}

async fn key_count(app: &crate::helpers::TestApp) -> i64 {
    let client = app.db.connect().await;
    client
        .query_one("SELECT count(*) FROM api_keys", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn rotate_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("bob", Role::User).await;
    let before = key_count(&app).await;

    for body in [json!([]), json!([true]), Value::Null, json!(1), json!("x")] {
        let (status, answer) = status_json(
            app.call(
                Method::POST,
                "/v1/keys/rotate",
                Some(&key),
                Some(body.clone()),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["code"], "validation_error");
        assert!(
            answer["detail"].as_str().unwrap().contains("a JSON object"),
            "{answer}"
        );
    }

    assert_eq!(key_count(&app).await, before, "no key was issued");
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused_on_every_route_and_writes_nothing() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("bob", Role::User).await;
    // serde would fill each of these structs from an array, field by field.
    for (path, body) in [
        ("/v1/disks", json!(["home", 10])),
        ("/v1/jobs/submit", json!(["t4", 1, 1.0])),
        (
            "/v1/auth/aws-login",
            json!(["ASIAEXAMPLEEXAMPLE00", "s", "t"]),
        ),
    ] {
        let (status, answer) = status_json(
            app.call(Method::POST, path, Some(&key), Some(body.clone()))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        assert_eq!(answer["code"], "validation_error", "{path}");
        assert!(
            answer["detail"].as_str().unwrap().contains("a JSON object"),
            "{path}: {answer}"
        );
    }
    let client = app.db.connect().await;
    for table in ["disks", "reservations"] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
}

#[tokio::test]
async fn rotate_answers_an_oversized_body_with_the_json_error() {
    let app = spawn_app().await;
    let (_, key) = app.user_with_key("carol", Role::User).await;
    let before = key_count(&app).await;
    let padding = " ".repeat(gpudev_api::extract::MAX_BODY);

    let resp = app
        .http
        .post(format!("{}/v1/keys/rotate", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(format!("{{}}{padding}"))
        .send()
        .await
        .unwrap();

    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let (status, body) = status_json(resp).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(key_count(&app).await, before, "no key was issued");
}

async fn document(app: &crate::helpers::TestApp) -> Value {
    let resp = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

/// A schema, following a `$ref` into the components and the non-null branch of a nullable one.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let not_null: Vec<&Value> = branches.iter().filter(|b| b["type"] != "null").collect();
        if let [only] = not_null.as_slice() {
            return resolve(doc, only);
        }
    }
    schema
}

fn query_param<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
    let param = params.iter().find(|p| p["name"] == name).unwrap();
    resolve(doc, &param["schema"])
}

fn property<'a>(doc: &'a Value, schema: &str, field: &str) -> &'a Value {
    resolve(
        doc,
        &doc["components"]["schemas"][schema]["properties"][field],
    )
}

/// The rules the server applies to its inputs are in the document, taken from the same
/// definitions (the domain's patterns and limits): each of these was missing or looser before,
/// and a schema-valid request was refused.
#[tokio::test]
async fn the_document_states_the_rules_the_server_applies() {
    use gpudev_domain::status::StatusList;
    use gpudev_domain::{DiskName, GithubUser};

    let app = spawn_app().await;
    let doc = document(&app).await;

    for path in ["/v1/jobs", "/v1/admin/jobs"] {
        let status = query_param(&doc, path, "status");
        assert_eq!(status["pattern"], StatusList::pattern(), "{path}");
    }
    for (path, name) in [
        ("/v1/admin/usage", "from"),
        ("/v1/admin/usage", "to"),
        ("/v1/admin/audit", "from"),
        ("/v1/admin/audit", "to"),
    ] {
        assert_eq!(
            query_param(&doc, path, name)["format"],
            "date-time",
            "{path} {name}"
        );
    }
    for (schema, field) in [
        ("CreateDisk", "disk_name"),
        ("RenameDisk", "new_name"),
        ("JobSubmission", "disk_name"),
    ] {
        let s = property(&doc, schema, field);
        assert_eq!(s["pattern"], DiskName::PATTERN, "{schema}.{field}");
        assert_eq!(s["minLength"], 1, "{schema}.{field}");
    }
    for (schema, field) in [
        ("AddUserRequest", "github_username"),
        ("JobSubmission", "github_user"),
    ] {
        let s = property(&doc, schema, field);
        assert_eq!(s["pattern"], GithubUser::PATTERN, "{schema}.{field}");
        assert_eq!(
            s["maxLength"],
            gpudev_domain::github_user::MAX_GITHUB_LOGIN_LEN,
            "{schema}.{field}"
        );
    }
    // The five-minute floor of a duration (utoipa takes only literals here, so this test holds
    // the attribute to the domain's constant).
    let floor = gpudev_domain::request::MIN_DURATION_SECONDS as f64 / 3600.0;
    for (schema, field) in [
        ("ExtendRequest", "extension_hours"),
        ("JobSubmission", "duration_hours"),
    ] {
        let minimum = property(&doc, schema, field)["minimum"].as_f64();
        assert_eq!(minimum, Some(floor), "{schema}.{field}");
    }
    // AWS credentials are printable ASCII without spaces, as `aws_login::validate` checks.
    for field in [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ] {
        let s = property(&doc, "AwsLoginRequest", field);
        assert_eq!(s["pattern"], "^[!-~]*$", "{field}");
    }
    let path_name = doc["paths"]["/v1/disks/{disk_name}"]["get"]["parameters"][0]["schema"].clone();
    assert_eq!(resolve(&doc, &path_name)["pattern"], DiskName::PATTERN);

    // Rotate's body is an object or nothing; never null.
    let rotate = &doc["paths"]["/v1/keys/rotate"]["post"]["requestBody"];
    assert_ne!(rotate["required"], true);
    let body = &rotate["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/RotateRequest", "{body}");
}

/// What the document calls valid the server accepts: one request per rule that used to be
/// refused although the schema allowed it.
#[tokio::test]
async fn requests_the_document_calls_valid_are_accepted() {
    let app = spawn_app().await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;

    // A whole number written as a float is an integer to JSON Schema.
    let (status, body) = status_json(
        app.post(
            "/v1/disks",
            &admin,
            json!({"disk_name": "scratch", "size_gb": 20.0}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Any case and spaces in a status filter, as its pattern allows; the empty filter.
    for query in [
        "status=Active%2C%20queued",
        "status=",
        "status=pending%2C%2C",
    ] {
        let (status, body) = status_json(app.get(&format!("/v1/jobs?{query}"), &admin).await).await;
        assert_eq!(status, 200, "{query}: {body}");
    }
    // A usage window that ends before it starts is empty, not an error.
    let (status, body) = status_json(
        app.get(
            "/v1/admin/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            &admin,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lines"], json!([]));
}

/// What the document forbids the server refuses, with a `detail` naming the problem.
#[tokio::test]
async fn requests_the_document_forbids_are_refused_with_a_detail() {
    let app = spawn_app().await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;

    for (path, field) in [
        ("/v1/jobs?status=running", "status"),
        ("/v1/jobs?status=active%09", "status"),
        ("/v1/admin/usage?from=yesterday", "from"),
    ] {
        let (status, body) = status_json(app.get(path, &admin).await).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(field), "{body}");
    }
    for (body, word) in [
        (json!({"disk_name": "", "size_gb": 10}), "disk name"),
        (json!({"disk_name": "ok", "size_gb": 10.5}), "integer"),
    ] {
        let (status, answer) = status_json(app.post("/v1/disks", &admin, body.clone()).await).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(word),
            "{answer}"
        );
    }
}
