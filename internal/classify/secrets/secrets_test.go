package secrets

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Every credential below is built from obviously fake parts (EXAMPLE, fake)
// at run time, so no file in the repository holds a token-shaped literal.

// body returns n characters of a fake but plausible-looking token body.
func body(n int) string {
	const unit = "EXAMPLE0fake1KEY2"
	return strings.Repeat(unit, n/len(unit)+1)[:n]
}

var (
	fakeAWSID     = "AKIA" + "IOSFODNN7EXAMPLE" // AWS documentation example
	fakeAWSSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	fakeGCPKey    = "AIza" + "Sy" + body(33)
	fakeGitHub    = "ghp" + "_" + body(36)
	fakeGitHubPAT = "github" + "_pat_" + body(22) + "_" + body(59)
	fakeGitLab    = "glpat" + "-" + body(20)
	fakeSlack     = "xoxb" + "-123456789012-1234567890123-" + body(24)
	fakeSlackApp  = "xapp" + "-1-A0EXAMPLE1-1234567890-" + body(20)
	fakeWebhook   = "https://hooks.slack.com/services/" + "TEXAMPLE0/BEXAMPLE1/" + body(24)
	fakeStripe    = "sk" + "_live_" + body(24)
	fakeStripeR   = "rk" + "_test_" + body(24)
	fakeOpenAI    = "sk" + "-proj-" + body(48)
	fakeOpenAIOld = "sk" + "-" + body(48)
	fakeAnthropic = "sk" + "-ant-api03-" + body(80) + "AA"
	fakeAzureKey  = body(86) + "=="
	fakePEMBody   = "MIIEpAIBAAKCAQEA" + body(64) + "\n" + body(64) + "\n" + body(40) + "=="
	fakeRSA       = "-----BEGIN RSA PRIVATE KEY-----\n" + fakePEMBody + "\n-----END RSA PRIVATE KEY-----"
	fakeOpenSSH   = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + fakePEMBody + "\n-----END OPENSSH PRIVATE KEY-----"
	fakePKCS8     = "-----BEGIN PRIVATE KEY-----\n" + fakePEMBody + "\n-----END PRIVATE KEY-----"
	fakeEC        = "-----BEGIN EC PRIVATE KEY-----\n" + fakePEMBody + "\n-----END EC PRIVATE KEY-----"
	fakePGP       = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + fakePEMBody + "\n-----END PGP PRIVATE KEY BLOCK-----"
	fakeJWT       = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"example","name":"Fake User"}`)) +
		".fake-signature-EXAMPLE_0123456789"
	fakeSAKey = strings.ReplaceAll("-----BEGIN PRIVATE KEY-----\n"+fakePEMBody+"\n-----END PRIVATE KEY-----", "\n", `\n`)
)

type found struct{ typ, value string }

func detect(text string) []found {
	var out []found
	for _, m := range Detect(text, nil) {
		out = append(out, found{m.Type, text[m.Start:m.End]})
	}
	return out
}

func TestDetect(t *testing.T) {
	tests := map[string]struct {
		text string
		want []found
	}{
		"aws access key id": {
			text: "my key is " + fakeAWSID + ", keep it safe",
			want: []found{{TypeAWSAccessKeyID, fakeAWSID}},
		},
		"aws key id as another parameter": { // only X-Amz-Credential is a pre-signed link's
			text: "?credential=" + fakeAWSID + "&Amz-Credential=" + fakeAWSID,
			want: []found{{TypeAWSAccessKeyID, fakeAWSID}, {TypeAWSAccessKeyID, fakeAWSID}},
		},
		"aws sts key id": {
			text: "ASIA" + "IOSFODNN7EXAMPLE",
			want: []found{{TypeAWSAccessKeyID, "ASIA" + "IOSFODNN7EXAMPLE"}},
		},
		"aws credentials file": {
			text: "[default]\naws_access_key_id = " + fakeAWSID + "\naws_secret_access_key = " + fakeAWSSecret + "\n",
			want: []found{{TypeAWSAccessKeyID, fakeAWSID}, {TypeAWSSecretAccessKey, fakeAWSSecret}},
		},
		"aws secret in json": {
			text: `{"SecretAccessKey": "` + fakeAWSSecret + `"}`,
			want: []found{{TypeAWSSecretAccessKey, fakeAWSSecret}},
		},
		"gcp api key in url": {
			text: "GET https://maps.example.com/api?key=" + fakeGCPKey + "&q=x",
			want: []found{{TypeGCPAPIKey, fakeGCPKey}},
		},
		"gcp service account": {
			text: `{"type": "service_account", "project_id": "example", "private_key_id": "0123", "private_key": "` + fakeSAKey + `\n", "client_email": "x@example.iam.gserviceaccount.com"}`,
			want: []found{{TypeGCPServiceAccount, fakeSAKey}},
		},
		"azure connection string": {
			text: "conn = DefaultEndpointsProtocol=https;AccountName=example;AccountKey=" + fakeAzureKey + ";EndpointSuffix=core.windows.net\n",
			want: []found{{TypeAzureConnectionString, "DefaultEndpointsProtocol=https;AccountName=example;AccountKey=" + fakeAzureKey + ";EndpointSuffix=core.windows.net"}},
		},
		"azure account key alone": {
			text: "AccountKey=" + fakeAzureKey,
			want: []found{{TypeAzureStorageKey, fakeAzureKey}},
		},
		"github classic": {
			text: "export GH=" + fakeGitHub,
			want: []found{{TypeGitHubToken, fakeGitHub}},
		},
		"github fine grained": {
			text: "token: " + fakeGitHubPAT,
			want: []found{{TypeGitHubToken, fakeGitHubPAT}},
		},
		"gitlab": {
			text: "use " + fakeGitLab + ".",
			want: []found{{TypeGitLabToken, fakeGitLab}},
		},
		"slack bot token": {
			text: "SLACK_BOT=" + fakeSlack,
			want: []found{{TypeSlackToken, fakeSlack}},
		},
		"slack app token": {
			text: fakeSlackApp,
			want: []found{{TypeSlackToken, fakeSlackApp}},
		},
		"slack webhook": {
			text: "curl -X POST " + fakeWebhook + " -d '{}'",
			want: []found{{TypeSlackWebhook, fakeWebhook}},
		},
		"stripe live and restricted": {
			text: fakeStripe + " " + fakeStripeR,
			want: []found{{TypeStripeKey, fakeStripe}, {TypeStripeKey, fakeStripeR}},
		},
		"openai project key": {
			text: "OPENAI_API_KEY=" + fakeOpenAI,
			want: []found{{TypeOpenAIAPIKey, fakeOpenAI}},
		},
		"openai legacy key": {
			text: "client = OpenAI(api_key=\"" + fakeOpenAIOld + "\")",
			want: []found{{TypeOpenAIAPIKey, fakeOpenAIOld}},
		},
		"anthropic key": {
			text: "x-api-key: " + fakeAnthropic,
			want: []found{{TypeAnthropicAPIKey, fakeAnthropic}},
		},
		"rsa private key": {
			text: "here:\n" + fakeRSA + "\nthanks",
			want: []found{{TypePrivateKey, fakeRSA}},
		},
		"openssh ec pkcs8 pgp": {
			text: fakeOpenSSH + "\n" + fakeEC + "\n" + fakePKCS8 + "\n" + fakePGP,
			want: []found{{TypePrivateKey, fakeOpenSSH}, {TypePrivateKey, fakeEC}, {TypePrivateKey, fakePKCS8}, {TypePrivateKey, fakePGP}},
		},
		"private key without end line": {
			text: "-----BEGIN RSA PRIVATE KEY-----\n" + fakePEMBody + "\n\n(truncated)",
			want: []found{{TypePrivateKey, "-----BEGIN RSA PRIVATE KEY-----\n" + fakePEMBody}},
		},
		"private key json outside service account": {
			text: `{"private_key": "` + fakeSAKey + `"}`,
			want: []found{{TypePrivateKey, fakeSAKey}},
		},
		"jwt bearer": {
			text: "Authorization: Bearer " + fakeJWT,
			want: []found{{TypeJWT, fakeJWT}},
		},
		"jwt in prose": {
			text: "Why does " + fakeJWT + ". fail to verify?",
			want: []found{{TypeJWT, fakeJWT}},
		},
		"password assignment forms": {
			text: "DB_PASSWORD=hunter2fake\npassword: \"Tr0ub4dor&3\"\n{\"client_secret\": \"fakeSecretValue42\"}\npwd := 'S3cr3tEx4mple'\n--api-key=fake0key0value9",
			want: []found{
				{TypePasswordAssignment, "hunter2fake"},
				{TypePasswordAssignment, "Tr0ub4dor&3"},
				{TypePasswordAssignment, "fakeSecretValue42"},
				{TypePasswordAssignment, "S3cr3tEx4mple"},
				{TypePasswordAssignment, "fake0key0value9"},
			},
		},
		// A Kubernetes Secret is named, not quoted: existingSecret,
		// passwordSecret and tlsSecret hold the resource's name. A secret
		// named by what it is for (clientSecret, jwt_secret, tokenSecret)
		// is still one.
		"names of secret objects": {
			text: "auth:\n  existingSecret: postgres-auth-v2\n  passwordSecret: db-credentials-v2\ntls:\n  - tlsSecret: ingress-tls-2024\n" +
				"imagePullSecret: regcred2x\nexisting_password_secret: pg-admin-v3\n" +
				"clientSecret: fake9client8secret7\njwt_secret: s3cr3tJwtFake1\noauth_token_secret = fakeTok3nSecr3t\nsecret: my-app-secret-v3\n",
			want: []found{
				{TypePasswordAssignment, "fake9client8secret7"},
				{TypePasswordAssignment, "s3cr3tJwtFake1"},
				{TypePasswordAssignment, "fakeTok3nSecr3t"},
				{TypePasswordAssignment, "my-app-secret-v3"},
			},
		},
		"passwords with dots": {
			text: "DB_PASSWORD=Winter.Is.Coming24\nsecret = corp.vault.fake7x\napi_key=app.v2.hunter2fake",
			want: []found{
				{TypePasswordAssignment, "Winter.Is.Coming24"},
				{TypePasswordAssignment, "corp.vault.fake7x"},
				{TypePasswordAssignment, "app.v2.hunter2fake"},
			},
		},
		"password in prose": {
			text: "My password is set, password: fake4ever2024. Can you check it?",
			want: []found{{TypePasswordAssignment, "fake4ever2024"}},
		},
		"token assignment carrying a vendor token": {
			text: "GITHUB_TOKEN=" + fakeGitHub,
			want: []found{{TypeGitHubToken, fakeGitHub}},
		},
		"postgres url": {
			text: "DATABASE_URL=postgres://app:fakePw0rd9@db.internal:5432/app?sslmode=require",
			want: []found{{TypeConnectionString, "fakePw0rd9"}},
		},
		"mongodb srv url": {
			text: "mongodb+srv://admin:f4kePassw0rd@cluster0.example.mongodb.net/test",
			want: []found{{TypeConnectionString, "f4kePassw0rd"}},
		},
		"redis url without user": {
			text: "redis://:fakeRedisPw1@cache:6379/0",
			want: []found{{TypeConnectionString, "fakeRedisPw1"}},
		},
		"jdbc and amqp": {
			text: "jdbc:mysql://root:fakeRootPw7@localhost/db amqp://guest:fakeRabbit9@mq//",
			want: []found{{TypeConnectionString, "fakeRootPw7"}, {TypeConnectionString, "fakeRabbit9"}},
		},

		"prose": {
			text: "Please ignore the password policy discussion; the token count was 512 and the secret to good bread is patience.",
		},
		"uuid and git sha": {
			text: "request 550e8400-e29b-41d4-a716-446655440000 at commit e83c5163316f89bfbde7d9ab23ca2e25604af290",
		},
		"elided keys": {
			text: "set OPENAI_API_KEY=sk-... or sk-proj-... and AKIA... then ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx and xoxb-your-token-here",
		},
		"placeholders": {
			text: "password=<password>\npassword: ********\ntoken=${GITHUB_TOKEN}\npassword = changeme\napi_key: xxx\npassword=\nsecret: YOUR_SECRET_HERE\n\"password\": \"string\"\ntoken: {{ .Values.token }}" +
				"\nclient = OpenAI(base_url=\"http://127.0.0.1:10000/v1\", api_key=\"unused-for-now\")\napi_key = \"unused-by-the-local-mock\"\ntoken: not-a-real-token-1234",
		},
		"code that is not a literal": {
			text: "token = tokenizer.encode(text)\nmax_tokens=1024\npassword = os.environ[\"DB_PASSWORD\"]\nif password == \"\": pass\nself.token = token\nPWD=/home/user",
		},
		"code that copies a credential from another name": {
			text: "earlySecret := hs.earlySecret\nsession.secret = hs.masterSecret\n\textMasterSecret:  c.extMasterSecret,\n" +
				"const token = process.env.GITHUB_TOKEN;\napi_key = settings.OPENAI_API_KEY\napiKey: cfg.APIKey",
		},
		// Code the routing-quality probe found refused (2026-12-07): a
		// composite literal, member accesses without digits, tokens that
		// grant nothing.
		"code that builds or reads a value": {
			text: "refreshedToken := refreshTokenResponse{}\nusername, password = opt.Username, opt.Password\n" +
				"AccessKey: result.RoleCredentials.AccessKeyId,\n" +
				"next_page_token = \"CiAKGjBpNDd2Nm5vbmU5ZnB0\"\ncsrf_token: 8f14e45fceea167a5a36dedd4bea2543\n" +
				"const etagToken = \"d41d8cd98f00b204e9800998ecf8427e\"\nvar cancellationToken = cts.Token7x\n" +
				"FxToken = __ccgo_fp_xToken\nconst szOID_USER_PASSWORD = \"2.5.4.35\"\nszOID_RSA_challengePwd = \"1.2.840.113549.1.9.7\"\n" +
				"arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretName-6RandomCharacters\nToken: `urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6`\n",
		},
		"tokens that do grant": {
			text: "accessToken := \"fakeAcc3ssT0kenValue\"\nrefresh_token = \"fakeR3freshT0kenValue\"\npage_secret = \"fakePag3Secr3tValue\"",
			want: []found{
				{TypePasswordAssignment, "fakeAcc3ssT0kenValue"},
				{TypePasswordAssignment, "fakeR3freshT0kenValue"},
				{TypePasswordAssignment, "fakePag3Secr3tValue"},
			},
		},
		"prose after colon": {
			text: "Password: The one you chose at sign-up. Token: expired yesterday.",
		},
		"urls without credentials": {
			text: "postgres://localhost:5432/db and https://example.com/a@b and postgres://user:password@localhost/db and mysql://root:root@localhost",
		},
		"public key and short pem": {
			text: "-----BEGIN PUBLIC KEY-----\n" + fakePEMBody + "\n-----END PUBLIC KEY-----\n-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
		},
		"jwt look-alikes": {
			text: "eyJub3QiOiJhIGp3dCJ9.short.x and eyJhbGciOiJIUzI1NiJ9 alone and eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.signature-part-long-enough",
		},
		"base64 image": {
			text: "data:image/png;base64," + strings.Repeat("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg+/", 200),
		},
		"publishable stripe key": {
			text: "pk" + "_live_" + body(24),
		},
		"s3 pre-signed url": { // raw, percent-decoded, and the STS (ASIA) form
			text: "https://b.s3.us-east-1.amazonaws.com/u/p.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + fakeAWSID + "%2F20240501%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240501T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=b275d1bbd7f5cbc4b63d4b2a8c0a8b93c3a6fdb7d8d3e2f0c4b1a9e8d7c6b5a4" +
				" x-amz-credential=" + fakeAWSID + "/20240501/us-east-1/s3/aws4_request X-Amz-Credential=ASIA" + "IOSFODNN7EXAMPLE%2F20240501",
		},
		"aws id with wrong length": {
			text: "AKIA" + "IOSFODNN7EXAMPLE1 and AKIA" + "IOSFODNN7EXAMP",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := detect(tc.text)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d matches %q, want %q", len(got), got, tc.want)
			}
			for k := range got {
				if got[k] != tc.want[k] {
					t.Errorf("match %d = %q, want %q", k, got[k], tc.want[k])
				}
			}
			checkSpans(t, tc.text, Detect(tc.text, nil))
		})
	}
}

func checkSpans(t *testing.T, text string, ms []Match) {
	t.Helper()
	prev := 0
	for _, m := range ms {
		if m.Start < prev || m.End <= m.Start || m.End > len(text) {
			t.Fatalf("bad span %+v after %d in text of %d bytes", m, prev, len(text))
		}
		prev = m.End
	}
}

func TestTypesComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, typ := range Types {
		if seen[typ] {
			t.Errorf("type %q listed twice", typ)
		}
		seen[typ] = true
	}
	if len(Types) != 17 {
		t.Errorf("Types has %d entries, want 17", len(Types))
	}
}

func TestDetectDoesNotAllocate(t *testing.T) {
	text := strings.Repeat("password=fake4ever2024 "+fakeGitHub+" "+fakeJWT+" prose prose\n", 20)
	dst := make([]Match, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		dst = Detect(text, dst[:0])
	})
	if allocs != 0 {
		t.Errorf("Detect allocated %.1f times per run with spare capacity", allocs)
	}
	if len(dst) != 60 {
		t.Errorf("found %d secrets, want 60", len(dst))
	}
}

// TestSourceCodeIsNotACredential: Go's TLS implementation, pasted into a
// request, holds no credential: its assignments copy secrets between
// variables (session.secret = hs.masterSecret). Before member accesses
// ending in a credential's name were told apart, eight of them were
// reported as password_assignment.
func TestSourceCodeIsNotACredential(t *testing.T) {
	//lint:ignore SA1019 a test runs from the toolchain that built it, whose sources are the corpus
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "crypto", "tls", "*.go"))
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue // test files hold real test keys and passwords
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, m := range Detect(string(b), nil) {
			t.Errorf("%s: %s %q", filepath.Base(f), m.Type, b[m.Start:m.End])
		}
	}
	if n < 10 {
		t.Skipf("Go's crypto/tls source is not here (%d files)", n)
	}
}
