//! Mail through the organisation's SMTP relay (lettre over tokio, rustls on
//! ring, the system's certificate store), and `custodian smtp test`, which
//! sends one message with the server's own settings to check them.
//!
//! A relay's reply can echo the recipient's address, so an error carries
//! the reply code only, and any other text passes through
//! [`mail::without_address`].

use crate::config::{ServeArgs, SmtpSettings, SmtpTls};
use clap::Subcommand;
use custodian_engine::mail::{self, BoxFuture, MailError, Mailer, NoMailer, OutgoingMail};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The mailer for these settings: SMTP through the relay, or, without
/// settings, one that answers every send with [`MailError::NotConfigured`].
/// Refused: a sender address that does not parse, TLS that cannot be set up.
pub fn mailer_from(settings: Option<&SmtpSettings>) -> Result<Arc<dyn Mailer>, String> {
    match settings {
        None => Ok(Arc::new(NoMailer)),
        Some(settings) => Ok(Arc::new(SmtpMailer::new(settings)?)),
    }
}

/// Sends each message in its own SMTP session (one-time codes are few; a
/// pool would hold idle connections to the relay).
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
    relay: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("relay", &self.relay)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    pub fn new(settings: &SmtpSettings) -> Result<SmtpMailer, String> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            format!(
                "smtp: smtp_from `{}` is not a valid sender address: {e}",
                settings.from
            )
        })?;
        let tls_parameters = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|e| format!("smtp: cannot set up TLS for `{}`: {e}", settings.host))
        };
        let tls = match settings.tls {
            SmtpTls::Starttls => Tls::Required(tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
                .port(settings.port)
                .tls(tls)
                .timeout(Some(settings.timeout));
        if let Some(c) = &settings.credentials {
            builder = builder.credentials(Credentials::new(c.username.clone(), c.password.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from,
            timeout: settings.timeout,
            relay: relay_name(&settings.host, settings.port),
        })
    }

    async fn deliver(&self, message: OutgoingMail) -> Result<(), MailError> {
        let to: Mailbox = message.to.trim().parse().map_err(|_| {
            MailError::Rejected("the recipient address is not a valid email address".into())
        })?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(message.text)
            .map_err(|e| {
                MailError::Rejected(mail::without_address(
                    &format!("the message cannot be built: {e}"),
                    &message.to,
                ))
            })?;
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, &self.relay, &message.to)),
            Err(_) => Err(MailError::Unavailable(format!(
                "{} did not finish within {} ms",
                self.relay,
                self.timeout.as_millis()
            ))),
        }
    }
}

impl Mailer for SmtpMailer {
    fn send(&self, message: OutgoingMail) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(self.deliver(message))
    }
}

fn relay_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A 5xx reply is permanent; a 4xx reply, a network failure, a timeout and
/// a failed TLS handshake are worth another try. Of a reply only the code is
/// kept: its text may name the recipient.
fn classify(e: &lettre::transport::smtp::Error, relay: &str, to: &str) -> MailError {
    if let Some(code) = e.status() {
        let text = format!("{relay} answered {code}");
        return if e.is_permanent() {
            MailError::Rejected(text)
        } else {
            MailError::Unavailable(text)
        };
    }
    if e.is_timeout() {
        return MailError::Unavailable(format!("{relay} timed out"));
    }
    let what = if e.is_response() {
        // A reply that does not parse: its text is withheld like any reply's.
        "an unreadable reply".to_string()
    } else {
        mail::without_address(&e.to_string(), to)
    };
    MailError::Unavailable(format!("{relay}: {what}"))
}

#[derive(Subcommand)]
pub enum SmtpCommand {
    /// Send one test message through the relay configured for `serve` (the
    /// same flags, environment and settings file), to check the settings.
    /// Prints `sent` with a reference that the message quotes; exit status 75
    /// when the failure is temporary, 1 otherwise.
    Test {
        /// The address to send the test message to.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        args: ServeArgs,
    },
}

pub fn run(command: SmtpCommand) -> ExitCode {
    let SmtpCommand::Test { to, args } = command;
    let mailer = match args
        .resolve()
        .and_then(|settings| mailer_from(settings.smtp.as_ref()))
    {
        Ok(mailer) => mailer,
        Err(e) => {
            eprintln!("custodian: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match crate::serve::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let reference = reference();
    let message = OutgoingMail {
        to,
        subject: "Custodian: test message".into(),
        text: format!(
            "This is a test message from Custodian, sent by `custodian smtp test` to check \
             the mail relay settings.\n\nReference: {reference}\n\nNo action is needed.\n"
        ),
    };
    match rt.block_on(mailer.send(message)) {
        Ok(()) => {
            out!("sent (reference {reference})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("custodian: {}: {e}", e.code());
            if e.is_transient() {
                // EX_TEMPFAIL: a script may try again later.
                ExitCode::from(75)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Six digits to tell this test message from others in the mailbox.
fn reference() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    100_000 + nanos % 900_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(from: &str) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            tls: SmtpTls::None,
            from: from.into(),
            credentials: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn without_settings_every_send_is_not_configured() {
        let mailer = mailer_from(None).unwrap();
        let sent = mailer
            .send(OutgoingMail {
                to: "ada@example.org".into(),
                subject: "s".into(),
                text: "t".into(),
            })
            .await;
        assert_eq!(sent, Err(MailError::NotConfigured));
    }

    #[test]
    fn a_sender_that_does_not_parse_is_refused() {
        assert!(mailer_from(Some(&settings("Example <privacy@example.org>"))).is_ok());
        let e = mailer_from(Some(&settings("privacy@"))).err().unwrap();
        assert!(e.contains("smtp_from"), "{e}");
    }

    #[test]
    fn relays_are_named_with_their_port() {
        assert_eq!(relay_name("mail.example.org", 587), "mail.example.org:587");
        assert_eq!(relay_name("::1", 25), "[::1]:25");
        let mailer = SmtpMailer::new(&settings("privacy@example.org")).unwrap();
        assert!(format!("{mailer:?}").contains("127.0.0.1:2525"));
    }
}
