// Package secrets finds credentials in prompt text before any model sees it.
//
// Detection is a single left-to-right scan. Every finding starts at the
// beginning of an identifier-like run of bytes ([A-Za-z0-9_.-]), so the
// scanner looks at each run once, dispatches on its first bytes (a known
// token prefix, a URL scheme, an assignment keyword) and skips to its end
// when nothing fires. Every check after a trigger is either bounded by a
// small constant or consumes the bytes it reads, which keeps Detect linear
// in the input on any text, including adversarial text.
//
// Precision comes from prefixes, exact lengths, character classes and
// plausibility checks (a random value mixes character classes and has no
// long runs of one byte); placeholders such as "sk-...", "<password>",
// "${TOKEN}" or "changeme" are rejected on purpose.
package secrets

// Match is one finding: Type is a snake_case type name, [Start, End) are byte offsets of the secret value in the text.
type Match struct {
	Type  string
	Start int
	End   int
}

// Type names. They are part of the API: policies and logs refer to them, so
// they never change meaning; new types may be added.
const (
	// TypeAWSAccessKeyID is an AWS access key id: AKIA or ASIA and 16 more
	// upper-case letters or digits. The span is the id.
	TypeAWSAccessKeyID = "aws_access_key_id"
	// TypeAWSSecretAccessKey is a 40-character AWS secret key assigned to
	// a name such as aws_secret_access_key or SecretAccessKey. The span is
	// the key.
	TypeAWSSecretAccessKey = "aws_secret_access_key"
	// TypeGCPAPIKey is a Google API key: AIza and 35 more characters.
	TypeGCPAPIKey = "gcp_api_key"
	// TypeGCPServiceAccount is the PEM private key inside a Google service
	// account JSON file ("private_key" next to "service_account"). The span
	// is the PEM block inside the JSON string.
	TypeGCPServiceAccount = "gcp_service_account"
	// TypeAzureStorageKey is an AccountKey= or SharedAccessKey= value
	// outside a full connection string. The span is the key.
	TypeAzureStorageKey = "azure_storage_key"
	// TypeAzureConnectionString is an Azure connection string
	// (DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…). The span is
	// the whole connection string.
	TypeAzureConnectionString = "azure_connection_string"
	// TypeGitHubToken is a GitHub token: ghp_, gho_, ghu_, ghs_ or ghr_ and
	// at least 36 alphanumerics, or a fine-grained github_pat_ token.
	TypeGitHubToken = "github_token"
	// TypeGitLabToken is a GitLab token: glpat-, gldt-, glrt-, glptt- or
	// glft- and at least 20 characters.
	TypeGitLabToken = "gitlab_token"
	// TypeSlackToken is a Slack token: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-,
	// xoxe- or xapp-.
	TypeSlackToken = "slack_token"
	// TypeSlackWebhook is an incoming-webhook URL on hooks.slack.com. The
	// span is the whole URL.
	TypeSlackWebhook = "slack_webhook"
	// TypeStripeKey is a Stripe secret or restricted key: sk_live_,
	// sk_test_, rk_live_ or rk_test_. Publishable keys (pk_) are not secret.
	TypeStripeKey = "stripe_key"
	// TypeOpenAIAPIKey is an OpenAI key: sk-proj-, sk-svcacct-, sk-admin-
	// or a plain sk- key of at least 32 characters.
	TypeOpenAIAPIKey = "openai_api_key"
	// TypeAnthropicAPIKey is an Anthropic key: sk-ant- and at least 32
	// more characters.
	TypeAnthropicAPIKey = "anthropic_api_key"
	// TypePrivateKey is a PEM private key block (RSA, EC, DSA, OPENSSH,
	// ENCRYPTED, PGP or plain PKCS#8). The span runs from -----BEGIN to the
	// end of the matching -----END line, or to the end of the key body when
	// the END line is missing.
	TypePrivateKey = "private_key"
	// TypeJWT is a JSON Web Token: three base64url segments whose header
	// decodes to a JSON object with an "alg" member. The span is the token.
	TypeJWT = "jwt"
	// TypePasswordAssignment is a non-trivial value assigned to a name such
	// as password, passwd, pwd, secret, token, api_key or client_secret
	// (password=…, "password": "…", PASSWORD: …). The span is the value
	// without quotes.
	TypePasswordAssignment = "password_assignment"
	// TypeConnectionString is a URL with a password in its user info
	// (postgres://user:pw@host, mongodb+srv://…, redis://:pw@…). The span
	// is the password only, so a redactor can mask it and keep the host.
	TypeConnectionString = "connection_string"
)

// Types lists every type Detect can report, in a stable order.
var Types = []string{
	TypeAWSAccessKeyID,
	TypeAWSSecretAccessKey,
	TypeGCPAPIKey,
	TypeGCPServiceAccount,
	TypeAzureStorageKey,
	TypeAzureConnectionString,
	TypeGitHubToken,
	TypeGitLabToken,
	TypeSlackToken,
	TypeSlackWebhook,
	TypeStripeKey,
	TypeOpenAIAPIKey,
	TypeAnthropicAPIKey,
	TypePrivateKey,
	TypeJWT,
	TypePasswordAssignment,
	TypeConnectionString,
}

// Detect appends every secret found in text to dst and returns it. With enough capacity in dst it must not allocate.
//
// Matches are sorted by Start and never overlap.
func Detect(text string, dst []Match) []Match {
	n := len(text)
	for i := 0; i < n; {
		if !identByte[text[i]] {
			i++
			continue
		}
		j := i + 1
		for j < n && identByte[text[j]] {
			j++
		}
		if maybeAt(text, i, j) {
			if m, next, ok := atIdent(text, i, j); ok {
				dst = append(dst, m)
				i = next
				continue
			}
		}
		i = j
	}
	return dst
}

// maybeAt says whether a detector of atIdent could match at the identifier
// s[i:j]: it starts a known token, or a separator follows it (a URL's
// scheme, name=value, name: value, perhaps after a closing quote and
// blanks). Most words of a text are neither, and skip atIdent's calls.
// It may say yes where atIdent finds nothing, never the reverse.
func maybeAt(s string, i, j int) bool {
	if tokenFirst(s[i]) {
		return true
	}
	if j >= len(s) {
		return false
	}
	k := j
	switch s[k] {
	case ':', '+', '=':
		return true
	case '"', '\'':
		k++
	}
	k = skipBlanks(s, k)
	return k < len(s) && (s[k] == '=' || s[k] == ':')
}

// atIdent runs every detector whose trigger is the identifier text[i:j].
// next is where scanning resumes; it is at least m.End.
func atIdent(s string, i, j int) (m Match, next int, ok bool) {
	if typ, end, ok := tokenAt(s, i); ok {
		if typ == TypePrivateKey && serviceAccount(s, i, end) {
			typ = TypeGCPServiceAccount
		}
		return Match{typ, i, end}, end, true
	}
	if j < len(s) && (s[j] == ':' || s[j] == '+') {
		if m, ok := urlAt(s, i, j); ok {
			return m, m.End, true
		}
	}
	if j < len(s) && s[j] == '=' {
		if m, next, ok := azureAt(s, i, j); ok {
			return m, next, true
		}
	}
	if j < len(s) && j-i <= 64 {
		if m, next, ok := assignmentAt(s, i, j); ok {
			return m, next, true
		}
	}
	return Match{}, 0, false
}

// serviceAccount reports whether the PEM block s[i:e] is the private_key of
// a Google service account JSON file: the value of a "private_key" member
// with "service_account" (the type) or gserviceaccount.com (the client
// e-mail) close by. The windows are bounded, so the check costs O(1).
func serviceAccount(s string, i, e int) bool {
	if i < 1 || s[i-1] != '"' {
		return false
	}
	k := i - 2
	for m := 0; m < 4 && k >= 0 && (s[k] == ' ' || s[k] == '\t' || s[k] == ':'); m++ {
		k--
	}
	if k < len(`"private_key"`)-1 || s[k-len(`"private_key"`)+1:k+1] != `"private_key"` {
		return false
	}
	lo, hi := i-512, e+512
	if lo < 0 {
		lo = 0
	}
	if hi > len(s) {
		hi = len(s)
	}
	return indexWithin(s, lo, "service_account", i-lo) >= 0 ||
		indexWithin(s, e, "gserviceaccount.com", hi-e) >= 0
}
