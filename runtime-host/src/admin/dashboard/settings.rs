//! The components' settings as the admin page shows them: `EDGE_OBS_*` variables with anything
//! that may be a secret masked, and the problems the middleware's own parser reports.
//!
//! Masking is deliberately conservative. A value is hidden when its name suggests a secret,
//! when it is a header rule (header values set on requests or responses are often
//! credentials for the app or the origin: only the header names are kept), or when the value
//! itself looks like a credential (a scheme such as `Bearer`, a URL with a password, a long
//! token-like word). Variables outside `EDGE_OBS_*` (the app's own environment) are only
//! counted.

use edge_observability::config::ConfigIssue;
use edge_observability::json::REDACTED;
use serde::Serialize;

/// Prefix of the middleware's variables.
const PREFIX: &str = "EDGE_OBS_";

/// Name fragments that mark a variable as secret.
const SECRET_NAME_PARTS: [&str; 12] = [
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
    "PRIVATE",
    "SIGNATURE",
    "API_KEY",
    "APIKEY",
];

/// Variables whose values are header rules (`name: value` entries): values are masked, names
/// kept.
const HEADER_RULE_SUFFIXES: [&str; 2] = ["_SET_HEADERS", "_APPEND_HEADERS"];

/// Value prefixes of credentials (case-insensitive).
const CREDENTIAL_PREFIXES: [&str; 5] = ["bearer ", "basic ", "digest ", "token ", "negotiate "];

/// A token-like word at least this long (letters and digits mixed) is taken for a secret.
const TOKEN_MIN_LEN: usize = 20;

/// One variable as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// Variable name.
    pub name: String,
    /// The value, or a masked form of it.
    pub value: String,
    /// Whether anything in `value` was masked.
    pub masked: bool,
}

/// A start-up configuration problem as shown (the value masked like settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Variable name.
    pub variable: String,
    /// The offending value, masked when it may be a secret.
    pub value: String,
    /// What is wrong.
    pub reason: String,
    /// What the middleware uses instead.
    pub default_used: String,
}

/// What the page shows about the environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettingsView {
    /// `EDGE_OBS_*` variables set, in the order given; others are at their defaults.
    pub settings: Vec<Setting>,
    /// Number of other variables handed to the components (not shown).
    pub other_variables: usize,
    /// Problems the middleware's parser reports for these settings.
    pub problems: Vec<Problem>,
}

impl SettingsView {
    /// Builds the view of the components' environment.
    pub fn new(env: &[(String, String)]) -> Self {
        let (_, issues) = edge_observability::Middleware::from_env(env.iter().cloned());
        let settings: Vec<Setting> = env
            .iter()
            .filter(|(name, _)| name.to_ascii_uppercase().starts_with(PREFIX))
            .map(|(name, value)| {
                let (value, masked) = mask(name, value);
                Setting {
                    name: name.clone(),
                    value,
                    masked,
                }
            })
            .collect();
        SettingsView {
            other_variables: env.len() - settings.len(),
            settings,
            problems: issues.iter().map(problem).collect(),
        }
    }
}

fn problem(issue: &ConfigIssue) -> Problem {
    let (value, _) = mask(&issue.variable, &issue.value);
    Problem {
        variable: issue.variable.clone(),
        value,
        reason: issue.reason.clone(),
        default_used: issue.default_used.clone(),
    }
}

/// The value to show for `name=value`, and whether anything was masked.
pub fn mask(name: &str, value: &str) -> (String, bool) {
    let upper = name.to_ascii_uppercase();
    if SECRET_NAME_PARTS.iter().any(|part| upper.contains(part)) {
        return (REDACTED.to_owned(), true);
    }
    if HEADER_RULE_SUFFIXES.iter().any(|s| upper.ends_with(s)) {
        return (mask_header_rules(value), !value.trim().is_empty());
    }
    if looks_like_credential(value) {
        return (REDACTED.to_owned(), true);
    }
    (value.to_owned(), false)
}

/// `name: value` entries (separated by newlines or `|`) with every value masked.
fn mask_header_rules(value: &str) -> String {
    value
        .split(['\n', '|'])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once(':') {
            Some((name, _)) => format!("{}: {REDACTED}", name.trim()),
            // Not a rule; it may be anything.
            None => REDACTED.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Whether a value looks like a credential wherever it appears.
pub fn looks_like_credential(value: &str) -> bool {
    let lower = value.trim().to_ascii_lowercase();
    if CREDENTIAL_PREFIXES.iter().any(|p| lower.contains(p)) {
        return true;
    }
    // `scheme://user:password@host`.
    if let Some((_, rest)) = lower.split_once("://")
        && rest
            .split(['/', '?', '#'])
            .next()
            .is_some_and(|auth| auth.contains('@'))
    {
        return true;
    }
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-.~".contains(c)))
        .any(|word| {
            word.len() >= TOKEN_MIN_LEN
                && word.chars().any(|c| c.is_ascii_digit())
                && word.chars().any(|c| c.is_ascii_alphabetic())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn ordinary_settings_are_shown() {
        for (name, value) in [
            ("EDGE_OBS_ROUTES", "/users/{id},/static/*"),
            ("EDGE_OBS_LOG_SAMPLE_RATE", "0.5"),
            (
                "EDGE_OBS_REDACT_QUERY_PARAMS",
                "token,x-amz-security-token,api_key",
            ),
            ("EDGE_OBS_REQUEST_ID_HEADER", "x-request-id"),
            ("EDGE_OBS_SERVICE_NAME", "checkout"),
        ] {
            assert_eq!(mask(name, value), (value.to_owned(), false), "{name}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        for (name, value) in [
            ("EDGE_OBS_OTLP_TOKEN", "abc"),
            ("EDGE_OBS_EXPORTER_AUTH", "x"),
            ("EDGE_OBS_SOMETHING_SECRET", "x"),
            ("EDGE_OBS_API_KEY", "x"),
            ("EDGE_OBS_SERVICE_NAME", "Bearer abc"),
            ("EDGE_OBS_ENDPOINT", "http://user:pa55@collector:4318/v1"),
            ("EDGE_OBS_SERVICE_NAME", "sk_live_51HfGq2eZvKYlo2C0123abcd"),
        ] {
            assert_eq!(
                mask(name, value),
                (REDACTED.to_owned(), true),
                "{name}={value}"
            );
        }
        assert!(!looks_like_credential("http://collector:4318/v1/traces"));
        assert!(!looks_like_credential(
            "frame-ancestors 'none'; object-src 'none'"
        ));
    }

    #[test]
    fn header_rules_keep_names_only() {
        assert_eq!(
            mask(
                "EDGE_OBS_REQUEST_SET_HEADERS",
                "authorization: Bearer s3cr3t | x-tenant: acme\nbroken"
            ),
            (
                "authorization: [REDACTED] | x-tenant: [REDACTED] | [REDACTED]".to_owned(),
                true
            )
        );
        assert_eq!(
            mask("EDGE_OBS_RESPONSE_APPEND_HEADERS", ""),
            (String::new(), false)
        );
    }

    #[test]
    fn view_counts_other_variables_and_masks_problems() {
        let v = SettingsView::new(&env(&[
            ("EDGE_OBS_ROUTES", "/users/{id}"),
            ("DATABASE_URL", "postgres://u:p@db/x"),
            ("EDGE_OBS_LOG_SAMPLE_RATE", "lots"),
            (
                "EDGE_OBS_REQUEST_SET_HEADERS",
                "x-api-key: k3y-value-1234567890abcdef",
            ),
            ("EDGE_OBS_NOT_A_THING", "Bearer zzz"),
        ]));
        assert_eq!(v.other_variables, 1);
        assert_eq!(v.settings.len(), 4);
        assert!(
            v.settings
                .iter()
                .all(|s| !s.value.contains("k3y") && !s.value.contains("zzz"))
        );
        let rate = v
            .problems
            .iter()
            .find(|p| p.variable == "EDGE_OBS_LOG_SAMPLE_RATE")
            .expect("the bad sample rate is reported");
        assert_eq!(rate.value, "lots");
        let unknown = v
            .problems
            .iter()
            .find(|p| p.variable == "EDGE_OBS_NOT_A_THING")
            .expect("the unknown variable is reported");
        assert_eq!(unknown.value, REDACTED);
        let json = serde_json::to_string(&v).unwrap();
        assert!(!json.contains("postgres") && !json.contains("zzz") && !json.contains("k3y"));
    }
}
