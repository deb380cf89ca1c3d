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
    /// The DPO's postal contact, where it differs from the controller's.
    pub dpo_contact: Option<String>,
    pub dpo_email: Option<String>,
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
    /// Where the activity's data is stored, with each provider and country.
    pub storage: Vec<String>,
    /// Recipients' and storage locations' transfers, with their safeguards.
    pub third_country_transfers: Vec<String>,
    pub erasure_time_limit: String,
    /// The legitimate interest pursued, for that basis.
    pub legitimate_interest: Option<String>,
    /// The reference of the legitimate-interest assessment.
    pub lia_reference: Option<String>,
    /// Art. 9(2) / DPA 2018 Sch. 1 conditions, per special category used.
    pub special_category_conditions: Vec<String>,
    /// DPA 2018 Sch. 2 exemptions that permit disclosures for the activity.
    pub exemptions: Vec<String>,
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
            // Every activity's data sits in every storage location, so each
            // location and its transfer belong under every activity.
            let transfers = recipients
                .iter()
                .filter_map(|r| {
                    transfer_text(policy, &TransferParty::recipient(r))
                        .map(|t| format!("{}: {t}", r.name))
                })
                .chain(policy.storage.iter().filter_map(|s| {
                    transfer_text(policy, &TransferParty::storage(s))
                        .map(|t| format!("{}: {t}", storage_name(s)))
                }))
                .collect();
            let storage = policy
                .storage
                .iter()
                .map(|s| format!("{} in {}", storage_name(s), country_name(&s.country)))
                .collect();
            let special_category_conditions = policy
                .categories
                .iter()
                .filter(|c| {
                    p.categories
                        .iter()
                        .any(|r| r.split('.').next() == Some(c.id.as_str()))
                })
                .filter_map(|c| {
                    c.art9_condition
                        .as_ref()
                        .map(|a| format!("{}: {} ({})", c.name, a.label(), a.as_str()))
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
                    .chain(policy.storage.iter().filter_map(|s| {
                        s.provider
                            .as_ref()
                            .map(|p| format!("{p} (hosting or backup provider)"))
                    }))
                    .collect(),
                storage,
                third_country_transfers: transfers,
                erasure_time_limit: p
                    .retention
                    .as_ref()
                    .map_or_else(String::new, |r| retention_text(policy, r)),
                legitimate_interest: p.interest.as_ref().map(|i| i.to_string()),
                lia_reference: p.lia.as_ref().map(|l| l.to_string()),
                special_category_conditions,
                exemptions: p.exemptions.iter().map(|e| e.label().to_string()).collect(),
            }
        })
        .collect();
    Record {
        controller: ControllerEntry {
            name: c.legal_name.to_string(),
            contact: c.contact_address.to_string(),
            phone: c.phone.clone(),
            dpo: c.dpo.name.to_string(),
            dpo_contact: c.dpo.contact.clone(),
            dpo_email: c.dpo.email.as_ref().map(|e| e.to_string()),
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
        "dpo_contact",
        "representative",
        "purpose_id",
        "purpose",
        "legal_basis",
        "data_subject_categories",
        "personal_data_categories",
        "recipient_categories",
        "storage",
        "third_country_transfers",
        "erasure_time_limit",
        "legitimate_interest",
        "lia_reference",
        "special_category_conditions",
        "exemptions",
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
            [
                r.controller.dpo_contact.clone(),
                r.controller.dpo_email.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; "),
            r.controller.representative.clone().unwrap_or_default(),
            a.purpose_id.clone(),
            a.purpose.clone(),
            a.legal_basis.clone(),
            a.data_subject_categories.join("; "),
            a.personal_data_categories.join("; "),
            a.recipient_categories.join("; "),
            a.storage.join("; "),
            a.third_country_transfers.join("; "),
            a.erasure_time_limit.clone(),
            a.legitimate_interest.clone().unwrap_or_default(),
            a.lia_reference.clone().unwrap_or_default(),
            a.special_category_conditions.join("; "),
            a.exemptions.join("; "),
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

fn storage_name(s: &StorageLocation) -> String {
    match &s.provider {
        Some(p) => format!("{} ({p})", s.description),
        None => s.description.clone(),
    }
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
