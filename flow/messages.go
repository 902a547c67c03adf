package flow

import (
	"fmt"
	"time"
)

// Message is a text shown to the user, identified by a stable numeric id
// that UIs translate.
type Message struct {
	ID   int    `json:"id"`
	Text string `json:"text"`
	// Type is "info", "error" or "success".
	Type string `json:"type"`
	// Context holds the values interpolated into Text; omitted when nil.
	Context map[string]any `json:"context,omitempty"`
}

// Message types.
const (
	MessageInfo  = "info"
	MessageError = "error"
)

// Message ids. The texts are those of the constructors below.
const (
	IDSignIn               = 1010001
	IDSignInWithProvider   = 1010002
	IDConfirmIdentity      = 1010003
	IDSecondFactor         = 1010004
	IDSignInWithKey        = 1010008
	IDLabelAuthCode        = 1010006
	IDLabelBackupCode      = 1010007
	IDUseAuthenticator     = 1010009
	IDUseBackupCode        = 1010010
	IDPrepareWebAuthn      = 1010012
	IDContinueWebAuthn     = 1010013
	IDCodeSent             = 1010014
	IDSendCode             = 1010015
	IDSignInWithPasskey    = 1010021
	IDSignInWithPassword   = 1010022
	IDLabelPassword        = 1070001
	IDLabelTitle           = 1070002
	IDLabelID              = 1070004
	IDResendCode           = 1070008
	IDContinue             = 1070009
	IDLabelLoginCode       = 1070013
	IDGeneric              = 4000001
	IDMissing              = 4000002
	IDTooShort             = 4000003
	IDInvalidCredentials   = 4000006
	IDInvalidCode          = 4000008
	IDAddressNotVerified   = 4000010
	IDNoTOTPDevice         = 4000011
	IDNoWebAuthnDevice     = 4000013
	IDBackupCodeUsed       = 4000012
	IDNoBackupCodes        = 4000014
	IDNoSecurityKey        = 4000015
	IDBackupCodeInvalid    = 4000016
	IDTooLong              = 4000017
	IDAccountMissing       = 4000037
	IDInvalidWebAuthn      = 4000043
	IDFlowExpired          = 4010001
	IDNoMethod             = 4010002
	IDAlreadyCompleted     = 4010007
	IDInvalidLoginCode     = 4010008
	IDIdentityDisabled     = 4010011
	IDTooManyAttempts      = 4019001
	IDIdentifierCharacters = 4019002
)

func info(id int, text string) Message   { return Message{ID: id, Text: text, Type: MessageInfo} }
func failed(id int, text string) Message { return Message{ID: id, Text: text, Type: MessageError} }

// SignIn is the label of the refresh flow's submit button (1010001).
func SignIn() Message { return info(IDSignIn, "Sign in") }

// SignInWithProvider labels a social sign-in button (1010002).
func SignInWithProvider(provider, providerID string) Message {
	m := info(IDSignInWithProvider, "Sign in with "+provider)
	m.Context = map[string]any{"provider": provider, "provider_id": providerID}
	return m
}

// ConfirmIdentity asks a signed-in user to re-authenticate (1010003).
func ConfirmIdentity() Message {
	return info(IDConfirmIdentity, "Please confirm this action by verifying that it is you.")
}

// SecondFactor asks for a second factor (1010004).
func SecondFactor() Message {
	return info(IDSecondFactor, "Please complete the second authentication challenge.")
}

// SignInWithPassword labels the password method's submit button (1010022).
func SignInWithPassword() Message { return info(IDSignInWithPassword, "Sign in with password") }

// LabelPassword labels the password field (1070001).
func LabelPassword() Message { return info(IDLabelPassword, "Password") }

// LabelID labels the identifier field when no title is configured (1070004).
func LabelID() Message { return info(IDLabelID, "ID") }

// LabelTitle labels the identifier field with a configured title (1070002).
func LabelTitle(title, name string) Message {
	m := info(IDLabelTitle, title)
	m.Context = map[string]any{"title": title, "name": name}
	return m
}

// Generic reports reason as a flow message (4000001).
func Generic(reason string) Message {
	m := failed(IDGeneric, reason)
	m.Context = map[string]any{"reason": reason}
	return m
}

// Missing reports a missing required field (4000002).
func Missing(property string) Message {
	m := failed(IDMissing, fmt.Sprintf("Property %s is missing.", property))
	m.Context = map[string]any{"property": property}
	return m
}

// InvalidCredentials is the one answer to a wrong password and an unknown
// identifier alike (4000006).
func InvalidCredentials() Message {
	return failed(IDInvalidCredentials, "The provided credentials are invalid, check for spelling mistakes in your password or username, email address, or phone number.")
}

// AddressNotVerified refuses a login whose address is unverified (4000010).
func AddressNotVerified() Message {
	return failed(IDAddressNotVerified, "Account not active yet. Did you forget to verify your email address?")
}

// TooShort reports a field shorter than allowed (4000003); lengths in
// bytes.
func TooShort(min, actual int) Message {
	m := failed(IDTooShort, fmt.Sprintf("length must be >= %d, but got %d", min, actual))
	m.Context = map[string]any{"min_length": min, "actual_length": actual}
	return m
}

// CodeSent tells that a login code was sent (1010014). It is shown for
// any address, known or not.
func CodeSent() Message {
	return info(IDCodeSent, "A code was sent to the address you provided. If you didn't receive it, please check the spelling of the address and try again.")
}

// SendCode labels the button that sends a login code (1010015).
func SendCode() Message { return info(IDSendCode, "Send sign in code") }

// ResendCode labels the button that sends a new login code (1070008).
func ResendCode() Message { return info(IDResendCode, "Resend code") }

// Continue labels a button that goes on to the next step (1070009).
func Continue() Message { return info(IDContinue, "Continue") }

// LabelLoginCode labels the login code field (1070013).
func LabelLoginCode() Message { return info(IDLabelLoginCode, "Login code") }

// InvalidLoginCode is the one answer to a wrong, expired or foreign login
// code (4010008).
func InvalidLoginCode() Message {
	return failed(IDInvalidLoginCode, "The login code is invalid or has already been used. Please try again.")
}

// LabelAuthCode labels the TOTP code field (1010006).
func LabelAuthCode() Message { return info(IDLabelAuthCode, "Authentication code") }

// LabelBackupCode labels the backup (lookup) code field (1010007).
func LabelBackupCode() Message { return info(IDLabelBackupCode, "Backup recovery code") }

// UseAuthenticator labels the TOTP submit button (1010009).
func UseAuthenticator() Message { return info(IDUseAuthenticator, "Use Authenticator") }

// UseBackupCode labels the backup code submit button (1010010).
func UseBackupCode() Message { return info(IDUseBackupCode, "Use backup recovery code") }

// InvalidCode is the one answer to a wrong, expired or replayed TOTP code
// (4000008).
func InvalidCode() Message {
	return failed(IDInvalidCode, "The provided authentication code is invalid, please try again.")
}

// NoTOTPDevice refuses a TOTP submission of an identity without TOTP
// (4000011).
func NoTOTPDevice() Message { return failed(IDNoTOTPDevice, "You have no TOTP device set up.") }

// BackupCodeUsed refuses a backup code that was used before (4000012).
func BackupCodeUsed() Message {
	return failed(IDBackupCodeUsed, "This backup recovery code has already been used.")
}

// NoBackupCodes refuses a backup code submission of an identity without
// backup codes (4000014).
func NoBackupCodes() Message {
	return failed(IDNoBackupCodes, "You have no backup recovery codes set up.")
}

// BackupCodeInvalid refuses a backup code that is not one of the
// identity's (4000016).
func BackupCodeInvalid() Message {
	return failed(IDBackupCodeInvalid, "The backup recovery code is not valid.")
}

// TooLong reports a field longer than allowed (4000017); lengths in bytes.
func TooLong(max, actual int) Message {
	m := failed(IDTooLong, fmt.Sprintf("length must be <= %d, but got %d", max, actual))
	m.Context = map[string]any{"max_length": max, "actual_length": actual}
	return m
}

// AccountMissing reports a social sign-in subject linked to no identity
// (4000037).
func AccountMissing() Message {
	return failed(IDAccountMissing, "This account does not exist or has no login method configured.")
}

// Expired tells the user that the flow they submitted had expired (4010001).
func Expired(expiredAt, now time.Time) Message {
	m := failed(IDFlowExpired, fmt.Sprintf("The login flow expired %.2f minutes ago, please try again.", now.Sub(expiredAt).Minutes()))
	m.Context = map[string]any{"expired_at": expiredAt.UTC().Format(time.RFC3339Nano), "expired_at_unix": expiredAt.Unix()}
	return m
}

// NoMethod reports a submission no login method is responsible for (4010002).
func NoMethod() Message {
	return failed(IDNoMethod, "Could not find a strategy to log you in with. Did you fill out the form correctly?")
}

// AlreadyCompleted answers a submission of a flow that already logged
// somebody in (4010007).
func AlreadyCompleted() Message {
	return failed(IDAlreadyCompleted, "The request was already completed successfully and can not be retried.")
}

// IdentityDisabled refuses a disabled identity (4010011).
func IdentityDisabled() Message {
	return failed(IDIdentityDisabled, "This account has been disabled. Please contact support for assistance.")
}

// TooManyAttempts refuses a throttled attempt (4019001).
func TooManyAttempts(retryAfterSeconds int) Message {
	m := failed(IDTooManyAttempts, fmt.Sprintf("Too many failed attempts. Please try again in %d seconds.", retryAfterSeconds))
	m.Context = map[string]any{"retry_after_seconds": retryAfterSeconds}
	return m
}

// IdentifierCharacters refuses an identifier with control, format or other
// invisible characters (4019002).
func IdentifierCharacters() Message {
	return failed(IDIdentifierCharacters, "The identifier contains characters that are not allowed.")
}

// SignInWithPasskey labels the passkey button (1010021).
func SignInWithPasskey() Message { return info(IDSignInWithPasskey, "Sign in with passkey") }

// SignInWithKey labels the security key button (1010008).
func SignInWithKey() Message { return info(IDSignInWithKey, "Sign in with a hardware key") }

// PrepareWebAuthn asks the user to get a security key ready (1010012).
func PrepareWebAuthn() Message {
	return info(IDPrepareWebAuthn, "Prepare your WebAuthn device (e.g. security key, biometrics scanner, ...) and press continue.")
}

// ContinueWebAuthn labels the security key button of a passwordless
// login's second step (1010013).
func ContinueWebAuthn() Message { return info(IDContinueWebAuthn, "Continue") }

// NoWebAuthnDevice refuses a security key submission of an identity
// without one (4000013).
func NoWebAuthnDevice() Message {
	return failed(IDNoWebAuthnDevice, "You have no WebAuthn device set up.")
}

// NoSecurityKey refuses a passkey or security key that belongs to no
// account (4000015).
func NoSecurityKey() Message {
	return failed(IDNoSecurityKey, "This account does not exist or has no security key set up.")
}

// InvalidWebAuthn is the one answer to a passkey or security key
// assertion that does not verify (4000043).
func InvalidWebAuthn() Message {
	return failed(IDInvalidWebAuthn, "The provided web authn login is invalid, please try again.")
}
