package secrets

import (
	"bytes"
	"strings"
)

// Connection-string schemes whose user info is reported. http and https are
// included: a password in any URL is a credential.
var urlSchemes = []string{
	"postgres", "postgresql", "mysql", "mariadb", "mongodb", "redis", "rediss",
	"amqp", "amqps", "mssql", "sqlserver", "cockroachdb", "clickhouse",
	"oracle", "db2", "ldap", "ldaps", "ftp", "sftp", "ftps", "smtp", "smtps",
	"imap", "imaps", "nats", "http", "https",
}

// urlAt matches scheme://user:password@host where text[i:j] is the scheme,
// and Slack webhook URLs.
func urlAt(s string, i, j int) (Match, bool) {
	a := j
	switch {
	case hasPrefixAt(s, j, "://"):
		a = j + 3
	case hasPrefixAt(s, j, "+srv://"):
		if !equalFold(s[i:j], "mongodb") {
			return Match{}, false
		}
		a = j + 7
	default:
		return Match{}, false
	}
	scheme := s[i:j]
	if equalFold(scheme, "https") && hasPrefixAt(s, a, "hooks.slack.com/") {
		if e, ok := slackWebhookAt(s, a+len("hooks.slack.com/")); ok {
			return Match{TypeSlackWebhook, i, e}, true
		}
		return Match{}, false
	}
	known := false
	for _, sc := range urlSchemes {
		if equalFold(scheme, sc) {
			known = true
			break
		}
	}
	if !known {
		return Match{}, false
	}
	// The authority ends at the path, query, fragment or anything that
	// cannot be inside a URL in running text; the last '@' ends user info.
	at, colon := -1, -1
	lim := a + 512
	k := a
	for ; k < len(s) && k < lim; k++ {
		c := s[k]
		if c == '/' || c == '?' || c == '#' || c <= ' ' || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>' {
			break
		}
		if c == '@' {
			at = k
		} else if c == ':' && colon < 0 && at < 0 {
			colon = k
		}
	}
	if at < 0 || colon < 0 || colon > at || at+1 >= k {
		return Match{}, false
	}
	user, pw := s[a:colon], s[colon+1:at]
	if pw == "" || pw == user || placeholder(pw) {
		return Match{}, false
	}
	return Match{TypeConnectionString, colon + 1, at}, true
}

// slackWebhookAt matches the path after hooks.slack.com/: services/T…/B…/…
// or workflows/…, and returns the end of the URL.
func slackWebhookAt(s string, p int) (int, bool) {
	switch {
	case hasPrefixAt(s, p, "services/"):
		p += len("services/")
	case hasPrefixAt(s, p, "workflows/"):
		p += len("workflows/")
	default:
		return 0, false
	}
	parts := 0
	for {
		e := runEndMax(s, p, &alnumByte, 64)
		if e-p < 8 {
			return 0, false
		}
		parts++
		if parts == 3 {
			return e, random(s[p:e])
		}
		if e >= len(s) || s[e] != '/' {
			return 0, false
		}
		p = e + 1
	}
}

// azureAt matches Azure connection strings and account keys; text[i:j] is
// the name before '='.
func azureAt(s string, i, j int) (Match, int, bool) {
	name := s[i:j]
	if name == "AccountKey" || name == "SharedAccessKey" {
		if e, ok := azureKeyAt(s, j+1); ok {
			return Match{TypeAzureStorageKey, j + 1, e}, e, true
		}
		return Match{}, 0, false
	}
	if name != "DefaultEndpointsProtocol" && name != "AccountName" && name != "Endpoint" && name != "BlobEndpoint" {
		return Match{}, 0, false
	}
	// Walk name=value; pairs, bounded, until one holds a key.
	k, found, end := i, false, i
	for k < len(s) && k < i+2048 {
		ne := runEndMax(s, k, &alnumByte, 40)
		if ne == k || ne >= len(s) || s[ne] != '=' {
			break
		}
		key := s[k:ne]
		if key == "AccountKey" || key == "SharedAccessKey" {
			e, ok := azureKeyAt(s, ne+1)
			if !ok {
				break
			}
			found, end, k = true, e, e
		} else {
			k = ne + 1
			for k < len(s) && k < i+2048 && s[k] != ';' && s[k] > ' ' && s[k] != '"' && s[k] != '\'' {
				k++
			}
			end = k
		}
		if k >= len(s) || s[k] != ';' {
			break
		}
		k++
	}
	if !found {
		return Match{}, 0, false
	}
	return Match{TypeAzureConnectionString, i, end}, end, true
}

// azureKeyAt matches the base64 value of an Azure key (usually 88
// characters, "==" padded) at s[p].
func azureKeyAt(s string, p int) (int, bool) {
	e := runEndMax(s, p, &b64Byte, 101)
	if e-p < 40 || e-p > 100 || !random(s[p:e]) {
		return 0, false
	}
	for k := 0; k < 2 && e < len(s) && s[e] == '='; k++ {
		e++
	}
	return e, true
}

type keywordKind uint8

const (
	kwNone keywordKind = iota
	kwGeneric
	kwAWS
	kwAuth
)

// Assignment names, lower case without separators; an identifier matches
// when it ends with one of them (DB_PASSWORD, client-secret, x-api-key).
var keywords = []struct {
	name string
	kind keywordKind
}{
	{"secretaccesskey", kwAWS},
	{"awssecretkey", kwAWS},
	{"awssecret", kwAWS},
	{"password", kwGeneric},
	{"passwd", kwGeneric},
	{"pwd", kwGeneric},
	{"passphrase", kwGeneric},
	{"secret", kwGeneric},
	{"secretkey", kwGeneric},
	{"token", kwGeneric},
	{"apikey", kwGeneric},
	{"accesskey", kwGeneric},
	{"authorization", kwAuth},
}

// keywordOf classifies identifier id by its suffix, ignoring case and
// '_', '-', '.' separators.
func keywordOf(id string) keywordKind {
	switch lower(id[len(id)-1]) {
	case 'd', 't', 'n', 'y', 'e':
	default:
		return kwNone
	}
	for _, kw := range keywords {
		if suffixFold(id, kw.name) {
			return kw.kind
		}
	}
	return kwNone
}

func suffixFold(id, suf string) bool {
	_, ok := trimSuffixFold(id, suf)
	return ok
}

// trimSuffixFold is id without suf, matched as suffixFold matches it; ok
// is false when id does not end with suf.
func trimSuffixFold(id, suf string) (string, bool) {
	k := len(id) - 1
	for m := len(suf) - 1; m >= 0; m-- {
		for k >= 0 && (id[k] == '_' || id[k] == '-' || id[k] == '.') {
			k--
		}
		if k < 0 || lower(id[k]) != suf[m] {
			return "", false
		}
		k--
	}
	return id[:k+1], true
}

// secretObjectKinds are the words that, before "secret", make a name the
// name of a secret object rather than of a secret: Kubernetes charts and
// operators write existingSecret: postgres-auth-v2, passwordSecret:
// db-credentials-v2, tlsSecret: ingress-tls-2024 — the Secret resource that
// holds the credential, by its name. clientSecret, jwtSecret or
// tokenSecret (OAuth 1's token secret) still name the credential itself.
var secretObjectKinds = []string{"existing", "password", "passwd", "credentials", "credential", "tls", "cert", "certificate", "pull"}

// namesSecretObject reports whether the assignment name id is a secret
// object's name (see secretObjectKinds).
func namesSecretObject(id string) bool { return kindBefore(id, "secret", secretObjectKinds) }

// kindBefore reports whether id ends in word with one of kinds before it
// (passwordSecret, next_page_token), ignoring case and separators.
func kindBefore(id, word string, kinds []string) bool {
	rest, ok := trimSuffixFold(id, word)
	if !ok || rest == "" {
		return false
	}
	for _, w := range kinds {
		if suffixFold(rest, w) {
			return true
		}
	}
	return false
}

// tokenKinds are the words that, before "token", make a name the name of a
// token that grants nothing: pagination cursors (next_page_token),
// anti-forgery and cache tokens (csrf_token, etagToken), .NET's
// CancellationToken, idempotency and sync tokens. accessToken, authToken,
// refreshToken or githubToken still name a credential.
var tokenKinds = []string{"page", "pagination", "continuation", "cursor", "resume", "csrf", "xsrf", "etag",
	"sync", "cancellation", "cancel", "idempotency"}

// namesHarmlessToken reports whether the assignment name id names a token
// that grants nothing (see tokenKinds).
func namesHarmlessToken(id string) bool { return kindBefore(id, "token", tokenKinds) }

// assignmentAt matches NAME = value, NAME: value, "NAME": "value" and
// NAME := value where NAME is a credential name; text[i:j] is NAME.
func assignmentAt(s string, i, j int) (Match, int, bool) {
	n := len(s)
	k := j
	// Closing quote of a quoted key.
	if i > 0 && k < n && (s[k] == '"' || s[k] == '\'') && s[i-1] == s[k] {
		k++
	}
	k = skipBlanks(s, k)
	// The separator is the cheap test, so it comes before the name.
	if k >= n || (s[k] != '=' && s[k] != ':') {
		return Match{}, 0, false
	}
	kind := keywordOf(s[i:j])
	if kind == kwNone || kind == kwGeneric && (namesSecretObject(s[i:j]) || namesHarmlessToken(s[i:j])) ||
		i > 0 && s[i-1] == ':' { // a segment of an ARN or a URN (arn:aws:secretsmanager:…:secret:Name), not a name
		return Match{}, 0, false
	}
	switch {
	case k < n && s[k] == '=':
		if k+1 < n && s[k+1] == '=' {
			return Match{}, 0, false
		}
		k++
		if k < n && s[k] == '>' {
			k++
		}
	case k < n && s[k] == ':':
		k++
		if k < n && s[k] == '=' {
			k++
		} else if k < n && s[k] == ':' {
			return Match{}, 0, false
		}
	default:
		return Match{}, 0, false
	}
	k = skipBlanks(s, k)
	var quote byte
	if k < n && (s[k] == '"' || s[k] == '\'' || s[k] == '`') {
		quote = s[k]
		k++
	}
	if kind == kwAuth {
		for _, scheme := range authSchemes {
			if hasPrefixAt(s, k, scheme) {
				k += len(scheme)
				break
			}
		}
	}
	if typ, end, ok := tokenAt(s, k); ok {
		return Match{typ, k, end}, end, true
	}
	vs, ve, ok := valueAt(s, k, quote)
	if !ok {
		return Match{}, 0, false
	}
	v := s[vs:ve]
	next := ve
	if quote != 0 {
		next++
	}
	if kind == kwAWS && len(v) == 40 && runEnd(v, 0, &b64Byte) == 40 && random(v) {
		return Match{TypeAWSSecretAccessKey, vs, ve}, next, true
	}
	if !strongValue(v, quote != 0) {
		return Match{}, 0, false
	}
	return Match{TypePasswordAssignment, vs, ve}, next, true
}

func skipBlanks(s string, k int) int {
	for m := 0; m < 4 && k < len(s) && (s[k] == ' ' || s[k] == '\t'); m++ {
		k++
	}
	return k
}

var authSchemes = []string{"Bearer ", "bearer ", "Basic ", "token ", "Token "}

// maxValue bounds assigned values: longer ones are blobs, not passwords,
// and the bound keeps the scan linear.
const maxValue = 200

// valueAt returns the value at s[k]: up to the closing quote when quoted,
// up to a delimiter otherwise.
func valueAt(s string, k int, quote byte) (int, int, bool) {
	lim := k + maxValue + 1
	if lim > len(s) {
		lim = len(s)
	}
	e := k
	if quote != 0 {
		for e < lim && s[e] != quote && s[e] != '\n' && s[e] != '\\' {
			e++
		}
		if e >= lim || s[e] != quote {
			return 0, 0, false
		}
		return k, e, e > k
	}
	for e < lim && !valueStop[s[e]] {
		e++
	}
	if e-k > maxValue {
		return 0, 0, false
	}
	for e > k && (s[e-1] == '.' || s[e-1] == ',' || s[e-1] == ':' || s[e-1] == '!' || s[e-1] == '?') {
		e--
	}
	return k, e, e > k
}

var valueStop = func() (t [256]bool) {
	for c := 0; c <= ' '; c++ {
		t[c] = true
	}
	for _, c := range []byte("\"'`,;)]}<>&|") {
		t[c] = true
	}
	t[0x7f] = true
	return t
}()

// strongValue reports whether v looks like a real secret rather than a
// placeholder, a variable reference, a word of prose or a number.
func strongValue(v string, quoted bool) bool {
	if len(v) < 6 {
		return false
	}
	switch v[0] {
	case '$', '%', '{', '[', '(', '&', '*', '!', '@', '/', '~', '.', '#', '\\':
		return false
	}
	set, run := classes(v)
	if set == classDigit || run == len(v) {
		return false
	}
	if set&(classLower|classUpper) == 0 && popcount4(set) < 3 {
		return false // digits and dots or dashes: an OID, a version, a date
	}
	if len(v) > 4 && equalFold(v[:4], "urn:") {
		return false // a URN names something; it grants nothing
	}
	if quoted {
		for k := 0; k < len(v); k++ {
			if v[k] == ' ' || v[k] == '\t' {
				return false
			}
		}
		return (popcount4(set) >= 2 || len(v) >= 10) && !placeholder(v)
	}
	for k := 0; k < len(v); k++ {
		if v[k] == '(' || v[k] == '[' || v[k] == '{' {
			return false // a call, an index or a composite literal: code, not a literal
		}
	}
	if parts, last := memberPath(v); parts >= 2 && keywordOf(last) != kwNone || parts >= 1 && !hasDigit(v) {
		// secret = hs.masterSecret, password = opt.Password, AccessKey:
		// result.RoleCredentials.AccessKeyId, FxToken = __ccgo_fp_xToken:
		// code that copies a value from another name. A password with
		// dots and digits (Winter.Is.Coming24) is still one.
		return false
	}
	letters := set&(classLower|classUpper) != 0
	if !(letters && set&classDigit != 0) && !(len(v) >= 12 && popcount4(set) >= 3) {
		return false
	}
	return !placeholder(v)
}

// memberPath reads v as a member access, identifiers joined by dots
// (hs.masterSecret, process.env.GITHUB_TOKEN, opt.Username): how many parts
// it has and the last one; parts is 0 when v is not one ("a..b", ".a", a
// part starting with a digit).
func memberPath(v string) (parts int, last string) {
	parts, start := 1, 0
	for k := 0; k <= len(v); k++ {
		if k < len(v) && v[k] != '.' {
			c := v[k]
			if !(c == '_' || 'a' <= lower(c) && lower(c) <= 'z' || k > start && '0' <= c && c <= '9') {
				return 0, ""
			}
			continue
		}
		if k == start {
			return 0, "" // an empty part
		}
		if k < len(v) {
			parts++
		}
		start = k + 1
	}
	return parts, v[strings.LastIndexByte(v, '.')+1:]
}

// Placeholders seen in docs, tutorials and redacted logs.
var (
	placeholderWords = []string{
		"password", "passwd", "pass", "secret", "token", "changeme", "changeit",
		"null", "none", "nil", "true", "false", "undefined", "empty", "string",
		"test", "admin", "root", "guest", "user", "username", "default",
		"hidden", "masked", "required", "optional", "pwd", "apikey", "api_key",
		"password123", "secret123", "mypassword", "mysecret", "mytoken",
	}
	placeholderParts = []string{
		"xxx", "***", "...", "…", "your", "example", "placeholder", "redacted",
		"changeme", "change_me", "change-me", "dummy", "sample", "<", ">",
		"${", "{{", "todo", "_here", "-here", "insert", "replace",
		"0000000", "1234567", "abcdef",
		// Stand-ins that say so, as quickstarts write them: a local
		// gateway's api_key="unused-for-now" (stellwerk's own README),
		// "not-a-real-token".
		"unused", "not-a-real", "not_a_real",
	}
)

// Lower-cased byte forms of the lists above, built once.
var placeholderWordsB, placeholderPartsB = toBytes(placeholderWords), toBytes(placeholderParts)

func toBytes(list []string) [][]byte {
	out := make([][]byte, len(list))
	for k, w := range list {
		out[k] = []byte(strings.ToLower(w))
	}
	return out
}

// placeholder reports whether v is an obvious stand-in for a secret. v is
// lower-cased into a stack buffer once, then searched with bytes.Contains.
func placeholder(v string) bool {
	if len(v) > maxValue {
		return false
	}
	var buf [maxValue]byte
	lv := buf[:len(v)]
	for k := 0; k < len(v); k++ {
		lv[k] = lower(v[k])
	}
	for _, w := range placeholderWordsB {
		if bytes.Equal(lv, w) {
			return true
		}
	}
	for _, p := range placeholderPartsB {
		if bytes.Contains(lv, p) {
			return true
		}
	}
	_, run := classes(v)
	return run == len(v)
}
