package admin

import (
	"encoding/json"
	"net/url"
	"regexp"
)

// Redacted replaces every secret value.
const Redacted = "REDACTED"

// secretKey matches configuration keys that hold secrets.
var secretKey = regexp.MustCompile(`(?i)(secret|password|passwd|token|private|credential|api_?key|(^|_)key$)`)

// Redact returns v (a configuration struct) as JSON values with every
// secret replaced: values of keys naming a secret (secret_key, token,
// smtp_password, …) and passwords inside URLs (database_url). It works
// on whatever fields the configuration has, so a secret added later is
// redacted without listing it here.
func Redact(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	json.Unmarshal(b, &out)
	return redact(out, "")
}

func redact(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = redact(x, k)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = redact(x, key)
		}
		return v
	case string:
		if v == "" {
			return v
		}
		if secretKey.MatchString(key) {
			return Redacted
		}
		return redactURL(v)
	}
	return v
}

// redactURL hides the password of a URL (and a password= parameter).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	changed := false
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Redacted)
		changed = true
	}
	q := u.Query()
	for k := range q {
		if secretKey.MatchString(k) {
			q.Set(k, Redacted)
			changed = true
		}
	}
	if !changed {
		return s
	}
	u.RawQuery = q.Encode()
	return u.String()
}
