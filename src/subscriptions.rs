//! GP Subscriptions (FHIR R4 rest-hook): which ones a GP system may create, which changed Tasks
//! and Observations each one selects, and what its notification carries.
//!
//! The HTTP handlers (`api::fhir::subscription`) only parse and render, `lifecycle` asks this
//! module whom a change notifies, and the delivery worker sends what was queued: the rules of a
//! Subscription are in this one file, so the criteria a GP may write and the criteria we match
//! cannot disagree.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::{ChannelHeader, ClientId, FhirId};
use crate::fhir::outcome::Issue;
use crate::store::{
    Payload, ReferralState, Store, StoreError, SubscriptionRow, SubscriptionStatus,
};
use crate::validation::Validation;

/// Criteria parameters a Subscription may use, checked when it is created.
pub const CRITERIA_PARAMETERS: [&str; 6] =
    ["focus", "based-on", "patient", "subject", "status", "code"];

/// The Subscriptions Backport IG's extension naming what a notification carries.
const PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";

/// A Subscription accepted from a GP system: the row to store and the resource as created.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub row: SubscriptionRow,
    pub resource: Value,
}

/// Checks a Subscription a GP client sends and, when it can be served, makes it active with a new
/// id. Every reason to refuse is reported at once. `endpoint_refused` is why the client's
/// delivery policy (`allow_private_targets`) would refuse its `channel.endpoint`, which the caller
/// asks the delivery guard (`endpoint`, `allows_private_targets`): a Subscription that could
/// never be notified is refused now, not at its first notification.
pub fn accept(
    config: &Config,
    validation: &Validation,
    client: &ClientId,
    mut resource: Value,
    now: DateTime<Utc>,
    endpoint_refused: Option<String>,
) -> Result<Accepted, Vec<Issue>> {
    if resource["resourceType"] != "Subscription" {
        return Err(vec![Issue::error(
            "structure",
            "This endpoint takes a Subscription.",
        )
        .at("resourceType")]);
    }
    let mut issues = validation.errors(&resource);
    let checked = check(&resource);
    if let Err(more) = &checked {
        issues.extend(more.iter().cloned());
    }
    if let Some(refused) = endpoint_refused {
        issues.push(
            Issue::error(
                "business-rule",
                format!(
                    "{refused}: no notification could be delivered to this endpoint (a lab may \
                     set allow_private_targets = true on this client)."
                ),
            )
            .with_message_id("subscription-endpoint-refused")
            .at("Subscription.channel.endpoint"),
        );
    }
    let has_secret = config
        .client(client.as_str())
        .is_some_and(|c| c.notification_secret.is_some());
    if !has_secret {
        issues.push(
            Issue::error(
                "business-rule",
                "This client has no notification_secret configured, so notifications could not \
                 be signed; ask the gateway's operator.",
            )
            .with_message_id("no-notification-secret"),
        );
    }
    let (resource_type, criteria, endpoint) = match checked {
        Ok(checked) if issues.is_empty() => checked,
        _ => return Err(issues),
    };
    let id = FhirId::generate();
    resource["status"] = json!("active");
    let resource = crate::fhir::stamp(
        resource,
        id.as_str(),
        1,
        &now.to_rfc3339_opts(SecondsFormat::Millis, true),
    );
    let row = SubscriptionRow {
        id: id.to_string(),
        client_id: client.clone(),
        resource_type,
        criteria,
        endpoint,
        status: SubscriptionStatus::Active,
        content: resource.to_string(),
    };
    Ok(Accepted { row, resource })
}

/// The `channel.endpoint` of a Subscription as sent, when it is an absolute URL.
pub fn endpoint(resource: &Value) -> Option<url::Url> {
    url::Url::parse(resource["channel"]["endpoint"].as_str()?).ok()
}

/// Whether `client`'s notifications may go to private and special-purpose addresses.
pub fn allows_private_targets(config: &Config, client: &ClientId) -> bool {
    config
        .client(client.as_str())
        .is_some_and(|c| c.allows_private_targets(&config.delivery))
}

/// The most active Subscriptions `client` may hold (`[[clients]] max_subscriptions`).
pub fn limit(config: &Config, client: &ClientId) -> usize {
    config
        .client(client.as_str())
        .map_or(0, |c| c.max_subscriptions)
}

/// Why one more Subscription is refused: each change notifies every matching Subscription, so
/// their number bounds what one change queues.
pub fn over_limit(limit: usize) -> Issue {
    Issue::error(
        "business-rule",
        format!(
            "This client already has {limit} active Subscriptions, the most it may hold; \
             delete one first (or ask the gateway's operator to raise max_subscriptions)."
        ),
    )
    .with_message_id("subscription-limit")
    .at("Subscription")
}

/// Checks what we serve: Task or Observation criteria with known parameters, a rest-hook channel
/// to an http(s) URL, a FHIR JSON (or empty) payload. Returns (resource type, criteria, endpoint).
fn check(resource: &Value) -> Result<(String, String, String), Vec<Issue>> {
    let mut issues = Vec::new();
    let criteria = resource["criteria"].as_str().unwrap_or("").to_string();
    let (resource_type, query) = criteria.split_once('?').unwrap_or((criteria.as_str(), ""));
    if !matches!(resource_type, "Task" | "Observation") {
        issues.push(
            Issue::error(
                "not-supported",
                "Subscriptions watch Task or Observation: criteria like Task?focus=ServiceRequest/{id}.",
            )
            .at("Subscription.criteria"),
        );
    }
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        if !CRITERIA_PARAMETERS.contains(&name.as_ref()) {
            issues.push(
                Issue::error(
                    "not-supported",
                    format!(
                        "Criteria parameter {name:?} is not supported; use {}.",
                        CRITERIA_PARAMETERS.join(", ")
                    ),
                )
                .at("Subscription.criteria"),
            );
        }
    }
    if resource["channel"]["type"].as_str() != Some("rest-hook") {
        issues.push(
            Issue::error("not-supported", "Only rest-hook channels are supported.")
                .at("Subscription.channel.type"),
        );
    }
    let endpoint = resource["channel"]["endpoint"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !matches!(
        url::Url::parse(&endpoint)
            .map(|u| u.scheme().to_string())
            .as_deref(),
        Ok("http" | "https")
    ) {
        issues.push(
            Issue::error(
                "required",
                "channel.endpoint must be the absolute http(s) URL to notify.",
            )
            .at("Subscription.channel.endpoint"),
        );
    }
    for (n, header) in resource["channel"]["header"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let refused = match header.as_str().map(str::parse::<ChannelHeader>) {
            Some(Ok(_)) => continue,
            Some(Err(e)) => e.to_string(),
            None => "a channel header is a string \"Name: value\"".to_string(),
        };
        issues.push(
            Issue::error("business-rule", format!("{refused}."))
                .at(format!("Subscription.channel.header[{n}]")),
        );
    }
    if let Some(content) = payload_content(resource) {
        if !matches!(content, "empty" | "full-resource") {
            issues.push(
                Issue::error(
                    "not-supported",
                    format!(
                        "Notifications carry the changed resource (full-resource) or nothing \
                         (empty); payload content {content:?} is not supported: the Subscriptions \
                         Backport defines id-only only inside its notification Bundle (a \
                         SubscriptionStatus naming a SubscriptionTopic and numbering events), \
                         which these R4 rest-hook Subscriptions do not send. Use empty and \
                         search by the criteria."
                    ),
                )
                .at("Subscription.channel.payload.extension"),
            );
        }
    }
    match resource["channel"]["payload"].as_str() {
        None | Some("application/fhir+json") | Some("application/json") => {}
        Some(other) => issues.push(
            Issue::error(
                "not-supported",
                format!(
                    "Notifications are sent as application/fhir+json (or empty); {other} is not \
                     supported."
                ),
            )
            .at("Subscription.channel.payload"),
        ),
    }
    if issues.is_empty() {
        Ok((resource_type.to_string(), criteria.clone(), endpoint))
    } else {
        Err(issues
            .into_iter()
            .map(|i| i.with_message_id("subscription-unsupported"))
            .collect())
    }
}

/// The client's own Subscription with this id (another client's does not exist for it).
pub async fn own(
    store: &dyn Store,
    client: &ClientId,
    id: &str,
) -> Result<Option<SubscriptionRow>, StoreError> {
    Ok(store
        .subscription(id)
        .await?
        .filter(|s| s.client_id == *client))
}

/// A stored Subscription as its client reads it: `active`, or `off` once deleted or given up.
pub fn as_read(row: &SubscriptionRow) -> Result<Value, StoreError> {
    let mut content: Value = row.json()?;
    content["status"] = json!(row.status);
    Ok(content)
}

/// A client's active Subscriptions on any of `resource_types`.
pub async fn of_client(
    store: &dyn Store,
    client_id: &ClientId,
    resource_types: &[&str],
) -> Result<Vec<SubscriptionRow>, StoreError> {
    let mut subscriptions = Vec::new();
    for resource_type in resource_types {
        subscriptions.extend(store.subscriptions_for(client_id, resource_type).await?);
    }
    Ok(subscriptions)
}

/// What a notification about a changed resource carries (R4 rest-hook): the resource when the
/// Subscription asked for a payload (`channel.payload`), nothing otherwise (the GP system then
/// reads it). The resource is `stored`, the version stored with the change, named rather than
/// copied: every Subscription notified of it shares that one copy.
pub fn notification_payload(
    subscription: &SubscriptionRow,
    stored: &Payload,
) -> Result<Payload, StoreError> {
    let resource = subscription.json()?;
    let wants_resource = resource["channel"]["payload"].is_string()
        && payload_content(&resource).is_none_or(|content| content == "full-resource");
    Ok(if wants_resource {
        stored.clone()
    } else {
        Payload::Text(String::new())
    })
}

/// The Subscriptions Backport's payload content on `channel.payload` (`empty`, `id-only`,
/// `full-resource`), which R4 lets a Subscription state as an extension; `None` when absent
/// (then R4's rule alone: a `payload` MIME type means the resource, none means nothing).
fn payload_content(resource: &Value) -> Option<&str> {
    resource["channel"]["_payload"]["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == PAYLOAD_CONTENT)?["valueCode"]
        .as_str()
}

/// Whether a Subscription's criteria (`Task`, `Task?focus=ServiceRequest/{id}`,
/// `Observation?based-on=ServiceRequest/{id}`, `?patient=Patient/{id}`, `?status=…`, `?code=…`)
/// select this resource of this referral.
pub fn matches_criteria(criteria: &str, resource: &Value, state: &ReferralState) -> bool {
    let (resource_type, query) = criteria.split_once('?').unwrap_or((criteria, ""));
    if resource["resourceType"].as_str() != Some(resource_type) {
        return false;
    }
    form_urlencoded::parse(query.as_bytes()).all(|(name, value)| {
        let value = value.as_ref();
        match name.as_ref() {
            "focus" | "based-on" => {
                value == format!("ServiceRequest/{}", state.referral_id)
                    || value == state.referral_id.as_str()
            }
            "patient" | "subject" => {
                value == format!("Patient/{}", state.patient_id)
                    || value == state.patient_id.as_str()
            }
            "status" => value
                .split(',')
                .any(|s| resource["status"].as_str() == Some(s)),
            "code" => resource["code"]["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    let code = c["code"].as_str().unwrap_or("");
                    let system = c["system"].as_str().unwrap_or("");
                    value == code || value == format!("{system}|{code}")
                }),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(criteria: &str, endpoint: &str) -> Value {
        json!({"resourceType": "Subscription", "criteria": criteria,
               "channel": {"type": "rest-hook", "endpoint": endpoint}})
    }

    #[test]
    fn what_may_be_subscribed_to() {
        let (kind, criteria, endpoint) = check(&subscription(
            "Task?focus=ServiceRequest/1",
            "https://gp.example/hook",
        ))
        .unwrap();
        assert_eq!(
            (kind.as_str(), endpoint.as_str()),
            ("Task", "https://gp.example/hook")
        );
        assert_eq!(criteria, "Task?focus=ServiceRequest/1");
        let issues = check(&subscription("Patient?colour=red", "ftp://gp.example")).unwrap_err();
        let at: Vec<_> = issues
            .iter()
            .filter_map(|i| i.expression.as_deref())
            .collect();
        assert_eq!(
            at,
            [
                "Subscription.criteria",
                "Subscription.criteria",
                "Subscription.channel.endpoint"
            ]
        );
        let mut id_only = subscription("Task", "https://gp.example");
        id_only["channel"]["payload"] = json!("application/fhir+json");
        id_only["channel"]["_payload"] =
            json!({"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]});
        let issues = check(&id_only).unwrap_err();
        assert_eq!(
            issues[0].expression.as_deref(),
            Some("Subscription.channel.payload.extension")
        );
        for name in CRITERIA_PARAMETERS {
            let criteria = format!("Task?{name}=x");
            assert!(
                check(&subscription(&criteria, "https://gp.example")).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_notification_carries_what_the_subscription_asked_for() {
        let stored = Payload::Stored {
            resource_type: "Task".into(),
            id: "t1".into(),
            version_id: 2,
        };
        let row = |channel: Value| SubscriptionRow {
            id: "s1".into(),
            client_id: "emis-demo".parse().expect("client id"),
            resource_type: "Task".into(),
            criteria: "Task".into(),
            endpoint: "https://gp.example".into(),
            status: SubscriptionStatus::Active,
            content: json!({"resourceType": "Subscription", "channel": channel}).to_string(),
        };
        let content =
            |code: &str| json!({"extension": [{"url": PAYLOAD_CONTENT, "valueCode": code}]});
        let cases = [
            (json!({"type": "rest-hook"}), false),
            (
                json!({"type": "rest-hook", "payload": "application/fhir+json"}),
                true,
            ),
            (
                json!({"type": "rest-hook", "payload": "application/fhir+json", "_payload": content("full-resource")}),
                true,
            ),
            (
                json!({"type": "rest-hook", "payload": "application/fhir+json", "_payload": content("empty")}),
                false,
            ),
        ];
        for (channel, full) in cases {
            let payload = notification_payload(&row(channel.clone()), &stored).expect("payload");
            let expected = if full {
                stored.clone()
            } else {
                Payload::Text(String::new())
            };
            assert_eq!(payload, expected, "{channel}");
        }
    }
}
