//! The Art. 30 record of processing activities, one entry per purpose.

use super::words::*;
use crate::model::*;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub controller: ControllerEntry,
    pub policy_version: String,
    pub activities: Vec<Activity>,
    pub security_measures: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControllerEntry {
    pub name: String,
    pub contact: String,
    pub phone: String,
    pub dpo: String,
    pub representative: Option<String>,
    pub regulator_registration: String,
}

/// One processing activity (Art. 30(1)(b)-(g)).
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    pub purpose_id: String,
    pub purpose: String,
    pub legal_basis: String,
    pub legal_basis_dpv: Option<String>,
    pub data_subject_categories: Vec<String>,
    pub personal_data_categories: Vec<String>,
    pub recipient_categories: Vec<String>,
    pub third_country_transfers: Vec<String>,
    pub erasure_time_limit: String,
}

pub fn record(policy: &Policy) -> Record {
    let c = &policy.controller;
    let activities = policy
        .purposes
        .iter()
        .map(|p| {
            let recipients: Vec<&Recipient> = p
                .recipients
                .iter()
                .filter_map(|id| {
                    policy
                        .recipients
                        .iter()
                        .find(|r| r.id.as_str() == id.as_str())
                })
                .collect();
            let transfers = recipients
                .iter()
                .filter_map(|r| {
                    let safeguard = r.safeguard.as_ref().map(|s| **s);
                    transfer_text(policy, &r.country, safeguard, r.dpf_certified)
                        .map(|t| format!("{}: {t}", r.name))
                })
                .collect();
            Activity {
                purpose_id: p.id.to_string(),
                purpose: p.description.clone(),
                legal_basis: p.basis.as_str().to_string(),
                legal_basis_dpv: p.basis.dpv().map(str::to_string),
                data_subject_categories: p
                    .subjects
                    .iter()
                    .map(|s| {
                        policy
                            .subjects
                            .iter()
                            .find(|x| x.id.as_str() == s.as_str())
                            .map_or_else(|| s.to_string(), |x| x.name.clone())
                    })
                    .collect(),
                personal_data_categories: p
                    .categories
                    .iter()
                    .map(|r| data_name(policy, r))
                    .collect(),
                recipient_categories: recipients
                    .iter()
                    .map(|r| format!("{} ({})", r.name, r.kind.label()))
                    .collect(),
                third_country_transfers: transfers,
                erasure_time_limit: p
                    .retention
                    .as_ref()
                    .map_or_else(String::new, |r| retention_text(policy, r)),
            }
        })
        .collect();
    Record {
        controller: ControllerEntry {
            name: c.legal_name.to_string(),
            contact: c.contact_address.to_string(),
            phone: c.phone.clone(),
            dpo: c.dpo.name.to_string(),
            representative: c.representative.clone(),
            regulator_registration: c.regulator.registration.to_string(),
        },
        policy_version: policy.policy.version.to_string(),
        activities,
        security_measures: policy.security.measures.clone(),
    }
}

pub fn json(policy: &Policy) -> String {
    serde_json::to_string_pretty(&record(policy)).unwrap_or_default()
}

/// RFC 4180 CSV, one row per activity; list cells are joined with "; ".
pub fn csv(policy: &Policy) -> String {
    let r = record(policy);
    let header = [
        "controller",
        "controller_contact",
        "dpo",
        "representative",
        "purpose_id",
        "purpose",
        "legal_basis",
        "data_subject_categories",
        "personal_data_categories",
        "recipient_categories",
        "third_country_transfers",
        "erasure_time_limit",
        "security_measures",
    ];
    let mut out = header.join(",");
    out.push_str("\r\n");
    let security = r.security_measures.join("; ");
    for a in &r.activities {
        let cells = [
            r.controller.name.clone(),
            format!("{}; {}", r.controller.contact, r.controller.phone),
            r.controller.dpo.clone(),
            r.controller.representative.clone().unwrap_or_default(),
            a.purpose_id.clone(),
            a.purpose.clone(),
            a.legal_basis.clone(),
            a.data_subject_categories.join("; "),
            a.personal_data_categories.join("; "),
            a.recipient_categories.join("; "),
            a.third_country_transfers.join("; "),
            a.erasure_time_limit.clone(),
            security.clone(),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
