//! Mail to people, such as one-time codes: the engine says what to send and
//! the shell sends it (over SMTP, through the organisation's relay). The
//! recipient's address is personal data and the text may hold a secret
//! code, so neither is ever printed, logged or put in an error.

use std::future::Future;
use std::pin::Pin;

/// A boxed future that can cross threads; what [`Mailer::send`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends mail. Implementations must keep the recipient's address and the
/// text out of their errors and logs.
pub trait Mailer: Send + Sync {
    fn send(&self, message: OutgoingMail) -> BoxFuture<'_, Result<(), MailError>>;
}

/// One plain-text message to one person.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// The address is personal data and the text may hold a one-time code:
/// only the subject and the text's length print.
impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &"<redacted>")
            .field("subject", &self.subject)
            .field(
                "text",
                &format_args!("<{} bytes redacted>", self.text.len()),
            )
            .finish()
    }
}

/// Why a message was not sent. The texts name the relay's answer (a reply
/// code, a network failure), never the recipient's address or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Worth trying again later: the relay is unreachable, timed out,
    /// answered 4xx, or could not be spoken to securely.
    #[error("the mail relay is unavailable: {0}")]
    Unavailable(String),
    /// Not worth trying again unchanged: the relay answered 5xx (the
    /// address, the message or the relay's configuration was refused), or
    /// the address is not one mail can be sent to.
    #[error("the mail relay refused the message: {0}")]
    Rejected(String),
    /// No relay is configured, so no mail can be sent.
    #[error("no mail relay is configured (set smtp_host and smtp_from)")]
    NotConfigured,
}

impl MailError {
    /// A stable, greppable code for each kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            MailError::Unavailable(_) => "mail_unavailable",
            MailError::Rejected(_) => "mail_rejected",
            MailError::NotConfigured => "mail_not_configured",
        }
    }

    /// Whether sending again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, MailError::Unavailable(_))
    }
}

/// `text` with every occurrence of `address` (compared without regard to
/// case) replaced by `<recipient>`: for an implementation that must pass on
/// a text from elsewhere (a library's error) and cannot rule out that it
/// echoes the address.
pub fn without_address(text: &str, address: &str) -> String {
    let address = address.trim();
    if address.is_empty() {
        return text.to_string();
    }
    let lower_text = text.to_lowercase();
    let lower_address = address.to_lowercase();
    // Lowercasing can change byte lengths outside ASCII; then compare nothing
    // piecewise and drop the text rather than risk printing the address.
    if lower_text.len() != text.len() || lower_address.len() != address.len() {
        return if lower_text.contains(&lower_address) {
            "<a text naming the recipient, withheld>".to_string()
        } else {
            text.to_string()
        };
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower_text.match_indices(&lower_address) {
        if at < rest {
            continue;
        }
        out.push_str(text.get(rest..at).unwrap_or_default());
        out.push_str("<recipient>");
        rest = at + address.len();
    }
    out.push_str(text.get(rest..).unwrap_or_default());
    out
}

/// The mailer of a server started without SMTP settings: every send fails
/// with [`MailError::NotConfigured`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMailer;

impl Mailer for NoMailer {
    fn send(&self, _message: OutgoingMail) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(async { Err(MailError::NotConfigured) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            to: "ada@example.org".into(),
            subject: "Your code".into(),
            text: "Your code is 493021".into(),
        }
    }

    #[test]
    fn debug_shows_neither_the_address_nor_the_text() {
        let shown = format!("{:?}", mail());
        assert!(!shown.contains("ada@example.org"), "{shown}");
        assert!(!shown.contains("493021"), "{shown}");
        assert!(shown.contains("Your code"), "{shown}");
    }

    #[test]
    fn addresses_are_taken_out_of_foreign_texts() {
        assert_eq!(
            without_address(
                "550 5.1.1 <ADA@example.org>: unknown; ada@example.org",
                "ada@example.org"
            ),
            "550 5.1.1 <<recipient>>: unknown; <recipient>"
        );
        assert_eq!(
            without_address("451 try later", "ada@example.org"),
            "451 try later"
        );
        assert_eq!(without_address("x", ""), "x");
        assert!(!without_address("Straße ADA@EXAMPLE.ORG", "ada@example.org").contains("ADA"));
        assert!(!without_address("İ ada@example.org", "ada@example.org").contains("ada@"));
    }

    #[test]
    fn codes_and_classes_are_stable() {
        assert_eq!(
            MailError::Unavailable("x".into()).code(),
            "mail_unavailable"
        );
        assert_eq!(MailError::Rejected("x".into()).code(), "mail_rejected");
        assert_eq!(MailError::NotConfigured.code(), "mail_not_configured");
        assert!(MailError::Unavailable("x".into()).is_transient());
        assert!(!MailError::Rejected("x".into()).is_transient());
    }

    #[tokio::test]
    async fn without_settings_nothing_is_sent() {
        let mailer: std::sync::Arc<dyn Mailer> = std::sync::Arc::new(NoMailer);
        assert_eq!(mailer.send(mail()).await, Err(MailError::NotConfigured));
    }
}
