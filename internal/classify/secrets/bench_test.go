package secrets

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// chatText returns about size bytes of typical chat text: prose, a code
// snippet with config, and now and then a credential.
func chatText(size int) string {
	paras := []string{
		"Can you help me debug this deployment? The service starts, then the health check fails after about thirty seconds and Kubernetes restarts the pod. I already checked the logs and there is nothing obvious. ",
		"Here is my config:\n```yaml\ndatabase:\n  host: db.internal\n  port: 5432\n  user: app\n  password: ${DB_PASSWORD}\nmax_tokens: 1024\ntimeout: 30s\n```\n",
		"def load(path):\n    with open(path) as f:\n        token = tokenizer.encode(f.read())\n    return token[:512]\n\n",
		"Summarise the following article in three bullet points, keep the tone neutral and mention the 2024 figures (commit e83c5163316f89bfbde7d9ab23ca2e25604af290, request 550e8400-e29b-41d4-a716-446655440000). ",
		"Ich habe eine Frage zu meinem Vertrag: Kann ich zum Monatsende kündigen, oder gilt die dreimonatige Frist? Danke für die Hilfe! ",
	}
	secretsEvery := []string{
		"export AWS_ACCESS_KEY_ID=" + fakeAWSID + "\n",
		"DATABASE_URL=postgres://app:fakePw0rd9@db.internal:5432/app\n",
		"Authorization: Bearer " + fakeJWT + "\n",
	}
	var b strings.Builder
	for k := 0; b.Len() < size; k++ {
		b.WriteString(paras[k%len(paras)])
		if k%16 == 15 {
			b.WriteString(secretsEvery[(k/16)%len(secretsEvery)])
		}
	}
	s := b.String()[:size]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

var benchSizes = []int{1 << 10, 10 << 10, 100 << 10, 1000 << 10}

func BenchmarkDetect(b *testing.B) {
	for _, size := range benchSizes {
		text := chatText(size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			dst := make([]Match, 0, 4096)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				dst = Detect(text, dst[:0])
			}
		})
	}
}

// BenchmarkDetectAdversarial covers inputs built to defeat scanners: one
// megabyte-long token, a run of one byte, trigger prefixes repeated
// back to back, and invalid UTF-8.
func BenchmarkDetectAdversarial(b *testing.B) {
	const size = 1 << 20
	cases := map[string]string{
		"long_token":     "ghp_" + strings.Repeat("a1", size/2),
		"one_byte":       strings.Repeat("-", size),
		"pem_begins":     strings.Repeat("-----BEGIN RSA PRIVATE KEY-----", size/31),
		"assignments":    strings.Repeat("password=password=", size/18),
		"url_userinfo":   strings.Repeat("postgres://a:b", size/14),
		"jwt_headers":    strings.Repeat("eyJhbGciOiJIUzI1NiJ9.", size/21),
		"invalid_utf8":   strings.Repeat("\xff\xfe\xc3", size/3),
		"azure_pairs":    "DefaultEndpointsProtocol=" + strings.Repeat("a=b;", size/4),
		"slack_prefixes": strings.Repeat("xoxb-", size/5),
	}
	for name, text := range cases {
		b.Run(name, func(b *testing.B) {
			dst := make([]Match, 0, 1024)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				dst = Detect(text, dst[:0])
			}
		})
	}
}
