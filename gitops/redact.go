package gitops

import (
	"errors"
	"net/url"
	"strings"
)

// Redact returns rawURL with any credentials replaced: for http(s) the whole user info
// (a token is often sent as the user name), for other schemes the password. Strings that
// are not URLs (an scp-like "git@host:path", a path) come back unchanged, as they hold no
// secret.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		if i := strings.Index(rawURL, "://"); i >= 0 {
			if at := strings.LastIndex(rawURL, "@"); at > i { // unparsable, but it may hold a secret
				return rawURL[:i+3] + "REDACTED@" + rawURL[at+1:]
			}
		}
		return rawURL
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		u.User = url.User("REDACTED")
	default:
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	return u.String()
}

// redactedError hides secrets in an error's text while keeping errors.Is working on the
// error it wraps. It does not unwrap, so no caller can reach the unredacted text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string        { return e.msg }
func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }
func (e *redactedError) As(target any) bool   { return asSafe(e.err, target) }

// asSafe lets errors.As reach only error types that carry no transport text.
func asSafe(err error, target any) bool {
	switch target.(type) {
	case **pushRejectedError:
		return errors.As(err, target)
	}
	return false
}

// redactErr returns err with every secret in secrets and the raw URL replaced by their
// redacted forms; nil stays nil.
func redactErr(err error, rawURL string, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if rawURL != "" {
		msg = strings.ReplaceAll(msg, rawURL, Redact(rawURL))
	}
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if u.Scheme == "http" || u.Scheme == "https" { // a token is often the user name
			secrets = append(secrets, u.User.Username())
		}
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
