//! The SMTP mailer, through `custodian smtp test` (the same settings and
//! the same mailer `serve` uses), against the test mailbox on loopback.

use crate::mailbox::{Fault, Mailbox};
use crate::{Scratch, bin, text};
use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

const TO: &str = "ada@example.org";
const PASSWORD: &str = "hunter2-relay-secret";

/// `custodian smtp test --to ADDRESS` with these flags, no SMTP settings
/// inherited from the environment.
fn smtp_test(to: &str, flags: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = bin();
    for name in [
        "CUSTODIAN_CONFIG",
        "CUSTODIAN_SMTP_HOST",
        "CUSTODIAN_SMTP_PORT",
        "CUSTODIAN_SMTP_TLS",
        "CUSTODIAN_SMTP_FROM",
        "CUSTODIAN_SMTP_TIMEOUT_MS",
        "CUSTODIAN_SMTP_USERNAME",
        "CUSTODIAN_SMTP_PASSWORD",
    ] {
        command.env_remove(name);
    }
    command
        .args(["smtp", "test", "--to", to])
        .args(flags)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn loopback(port: u16) -> Vec<String> {
    [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port.to_string(),
        "--smtp-tls",
        "none",
        "--smtp-from",
        "I Image IT <privacy@example.org>",
    ]
    .map(str::to_string)
    .to_vec()
}

fn args(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Neither the recipient's address nor the relay password appears.
fn assert_private(out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.to_lowercase().contains(TO), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
}

#[test]
fn a_message_arrives_with_its_subject_and_body() {
    let mailbox = Mailbox::start();
    let out = smtp_test(TO, &args(&loopback(mailbox.addr().port())), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("sent"), "{stdout}");
    let message = mailbox.latest_to(TO).unwrap();
    assert_eq!(message.from, "privacy@example.org");
    assert_eq!(message.to, vec![TO.to_string()]);
    assert_eq!(
        message.header("Subject").as_deref(),
        Some("Custodian: test message")
    );
    assert!(
        message
            .header("From")
            .unwrap()
            .contains("privacy@example.org")
    );
    assert!(message.header("Message-ID").is_some());
    assert!(message.body().contains("sent by `custodian smtp test`"));
    // The reference printed is the one the message quotes: a 6-digit code.
    let code = mailbox.code_for(TO).unwrap();
    assert_eq!(code.len(), 6);
    assert!(stdout.contains(&format!("reference {code}")), "{stdout}");
    assert_eq!(mailbox.messages().len(), 1);
}

#[test]
fn the_settings_file_configures_the_relay() {
    let mailbox = Mailbox::start();
    let scratch = Scratch::new("smtp-file");
    let config = scratch.write(
        "custodian.toml",
        &format!(
            "smtp_host = \"localhost\"\nsmtp_port = {}\nsmtp_tls = \"none\"\nsmtp_from = \"privacy@example.org\"\nsmtp_timeout_ms = 5000\n",
            mailbox.addr().port()
        ),
    );
    let out = smtp_test(
        "Someone.Else@Example.org",
        &["--config", config.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let message = mailbox
        .wait_for("someone.else@example.org", 0, Duration::from_secs(5))
        .unwrap();
    assert!(message.code().is_some());
}

#[test]
fn a_transient_failure_is_unavailable_and_a_permanent_one_rejected() {
    let mailbox = Mailbox::start();
    let flags = loopback(mailbox.addr().port());

    mailbox.fail_next(Fault::Transient);
    let out = smtp_test(TO, &args(&flags), &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mail_unavailable"), "{stderr}");
    assert!(stderr.contains("451"), "{stderr}");
    assert_private(&out);

    mailbox.fail_next(Fault::Permanent);
    let out = smtp_test(TO, &args(&flags), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mail_rejected"), "{stderr}");
    assert!(stderr.contains("550"), "{stderr}");
    assert_private(&out);
    assert!(mailbox.messages().is_empty());

    // Each fault answers one message; the next goes through.
    let out = smtp_test(TO, &args(&flags), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mailbox.messages().len(), 1);
}

#[test]
fn nothing_listening_is_unavailable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = smtp_test(TO, &args(&loopback(port)), &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mail_unavailable"), "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    assert_private(&out);
}

#[test]
fn a_relay_that_never_answers_times_out() {
    // Connections complete in the listen backlog, but no greeting ever comes.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut flags = loopback(silent.local_addr().unwrap().port());
    flags.extend(["--smtp-timeout-ms".to_string(), "300".to_string()]);
    let out = smtp_test(TO, &args(&flags), &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("mail_unavailable"));
    assert_private(&out);
}

#[test]
fn starttls_is_required_unless_turned_off() {
    // The mailbox offers no STARTTLS: the message must not go in clear.
    let mailbox = Mailbox::start();
    let flags = [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &mailbox.addr().port().to_string(),
        "--smtp-from",
        "privacy@example.org",
    ]
    .map(str::to_string);
    let out = smtp_test(TO, &args(&flags), &[]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("mail_unavailable") && stderr.contains("STARTTLS"),
        "{stderr}"
    );
    assert!(mailbox.messages().is_empty());
}

#[test]
fn no_encryption_is_refused_for_a_relay_off_this_machine() {
    let out = smtp_test(
        TO,
        &[
            "--smtp-host",
            "mail.example.org",
            "--smtp-tls",
            "none",
            "--smtp-from",
            "privacy@example.org",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("loopback") && stderr.contains("mail.example.org"),
        "{stderr}"
    );
    assert_private(&out);
}

#[test]
fn without_a_relay_nothing_is_sent() {
    let out = smtp_test(TO, &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("mail_not_configured"));
    assert_private(&out);
}

#[test]
fn credentials_come_from_the_environment_and_are_never_shown() {
    // The mailbox offers no AUTH, so a client holding credentials must stop
    // before sending anything rather than send unauthenticated.
    let mailbox = Mailbox::start();
    let out = smtp_test(
        TO,
        &args(&loopback(mailbox.addr().port())),
        &[
            ("CUSTODIAN_SMTP_USERNAME", "relay-user"),
            ("CUSTODIAN_SMTP_PASSWORD", PASSWORD),
        ],
    );
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("authentication"),
        "{}",
        text(&out.stderr)
    );
    assert_private(&out);
    assert!(mailbox.messages().is_empty());

    let out = smtp_test(
        TO,
        &args(&loopback(mailbox.addr().port())),
        &[("CUSTODIAN_SMTP_PASSWORD", PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("CUSTODIAN_SMTP_USERNAME"));
    assert_private(&out);

    // Not a flag: a password on the command line is visible to every user.
    let out = smtp_test(TO, &["--smtp-password", PASSWORD], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_invalid_recipient_is_rejected_without_being_echoed() {
    let mailbox = Mailbox::start();
    let out = smtp_test(
        "not an address",
        &args(&loopback(mailbox.addr().port())),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("mail_rejected"), "{stderr}");
    assert!(!stderr.contains("not an address"), "{stderr}");
    assert!(mailbox.messages().is_empty());
}
