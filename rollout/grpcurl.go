package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// GRPCurlCommand is a grpcurl invocation as a probe runs it in process.
type GRPCurlCommand struct {
	Data        string // request JSON; empty sends an empty message
	Plaintext   bool
	Insecure    bool
	Headers     []string // -H: "name: value", sent on the call and on reflection
	RPCHeaders  []string // -rpc-header: sent on the call only
	Authority   string
	ServerName  string
	CACert      string
	Cert        string
	Key         string
	MaxTime     time.Duration
	ConnectTime time.Duration
	Protosets   []string
	ImportPaths []string
	Protos      []string
	UserAgent   string
	Address     string
	// Method is the full method, "package.Service/Method".
	Method string
}

// UsesReflection reports whether descriptors come from server reflection rather than from
// protoset or proto files.
func (c *GRPCurlCommand) UsesReflection() bool {
	return len(c.Protosets) == 0 && len(c.Protos) == 0
}

// ParseGRPCurl parses a grpcurl command line the way a shell and grpcurl would, for the
// subset of grpcurl that a probe supports: -d -plaintext -insecure -H -rpc-header -authority
// -servername -cacert -cert -key -max-time -connect-timeout -protoset -import-path -proto
// -user-agent, then the address and the method. A leading "grpcurl" is allowed.
func ParseGRPCurl(line string) (*GRPCurlCommand, error) {
	args, err := splitWords(line)
	if err != nil {
		return nil, err
	}
	if len(args) > 0 && args[0] == "grpcurl" {
		args = args[1:]
	}
	c := &GRPCurlCommand{}
	dataSet := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if isBoolFlag(name) {
			b := true
			if hasValue {
				if b, err = strconv.ParseBool(value); err != nil {
					return nil, fmt.Errorf("-%s: %q is not a boolean", name, value)
				}
			}
			if name == "plaintext" {
				c.Plaintext = b
			} else {
				c.Insecure = b
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("-%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if err := c.setFlag(name, value); err != nil {
			return nil, err
		}
		if name == "d" {
			dataSet = true
		}
	}
	rest := args[i:]
	switch {
	case len(rest) == 0:
		return nil, errors.New("the address and the method are missing (grpcurl [flags] HOST:PORT package.Service/Method)")
	case len(rest) == 1:
		return nil, fmt.Errorf("the method is missing after %q (grpcurl [flags] HOST:PORT package.Service/Method)", rest[0])
	case len(rest) > 2:
		return nil, fmt.Errorf("unexpected arguments %q after the method", rest[2:])
	}
	c.Address, c.Method = rest[0], rest[1]
	if err := c.check(dataSet); err != nil {
		return nil, err
	}
	return c, nil
}

func isBoolFlag(name string) bool { return name == "plaintext" || name == "insecure" }

func (c *GRPCurlCommand) setFlag(name, value string) error {
	var err error
	switch name {
	case "d":
		c.Data = value
	case "H":
		c.Headers = append(c.Headers, value)
	case "rpc-header":
		c.RPCHeaders = append(c.RPCHeaders, value)
	case "authority":
		c.Authority = value
	case "servername":
		c.ServerName = value
	case "cacert":
		c.CACert = value
	case "cert":
		c.Cert = value
	case "key":
		c.Key = value
	case "max-time":
		c.MaxTime, err = seconds(name, value)
	case "connect-timeout":
		c.ConnectTime, err = seconds(name, value)
	case "protoset":
		c.Protosets = append(c.Protosets, value)
	case "import-path":
		c.ImportPaths = append(c.ImportPaths, value)
	case "proto":
		c.Protos = append(c.Protos, value)
	case "user-agent":
		c.UserAgent = value
	default:
		return fmt.Errorf("unknown or unsupported grpcurl flag -%s", name)
	}
	return err
}

// seconds parses grpcurl's fractional seconds ("2", "0.5").
func seconds(name, value string) (time.Duration, error) {
	f, err := strconv.ParseFloat(value, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("-%s: %q is not a positive number of seconds", name, value)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func (c *GRPCurlCommand) check(dataSet bool) error {
	if dataSet {
		if c.Data == "@" {
			return errors.New("-d @ reads standard input, which a probe does not have; put the request in -d")
		}
		if err := checkJSONStream(c.Data); err != nil {
			return fmt.Errorf("-d: %v", err)
		}
	}
	if c.Plaintext && c.Insecure {
		return errors.New("-plaintext and -insecure cannot be used together")
	}
	if c.Plaintext && (c.CACert != "" || c.Cert != "" || c.ServerName != "") {
		return errors.New("-plaintext cannot be used with -cacert, -cert or -servername")
	}
	if (c.Cert == "") != (c.Key == "") {
		return errors.New("-cert and -key must be given together")
	}
	if len(c.Protosets) > 0 && len(c.Protos) > 0 {
		return errors.New("use -protoset or -proto, not both")
	}
	for _, h := range append(c.Headers, c.RPCHeaders...) {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("header %q is not \"name: value\"", h)
		}
	}
	host, port, err := net.SplitHostPort(c.Address)
	if err != nil || host == "" {
		return fmt.Errorf("address %q is not HOST:PORT", c.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q has no valid port", c.Address)
	}
	method, err := normalizeMethod(c.Method)
	if err != nil {
		return err
	}
	c.Method = method
	return nil
}

var methodPart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// normalizeMethod accepts "pkg.Service/Method" and "pkg.Service.Method", as grpcurl does,
// and returns the first form.
func normalizeMethod(m string) (string, error) {
	m = strings.TrimPrefix(m, "/")
	svc, name, ok := strings.Cut(m, "/")
	if !ok {
		i := strings.LastIndex(m, ".")
		if i < 0 {
			return "", fmt.Errorf("method %q is not package.Service/Method", m)
		}
		svc, name = m[:i], m[i+1:]
	}
	for _, part := range append(strings.Split(svc, "."), name) {
		if !methodPart.MatchString(part) {
			return "", fmt.Errorf("method %q is not package.Service/Method", m)
		}
	}
	return svc + "/" + name, nil
}

// checkJSONStream accepts what grpcurl's -d accepts: one or more JSON objects in a row.
func checkJSONStream(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	n := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%q is not valid JSON: %v", s, err)
		}
		if _, ok := v.(map[string]any); !ok {
			return fmt.Errorf("%q is not a JSON object", s)
		}
		n++
	}
	if n == 0 && strings.TrimSpace(s) != "" {
		return fmt.Errorf("%q is not valid JSON", s)
	}
	return nil
}

// splitWords splits a command line as a POSIX shell would, for words, single quotes, double
// quotes and backslashes; it refuses anything a shell would expand.
func splitWords(line string) ([]string, error) {
	var (
		words []string
		cur   bytes.Buffer
		in    bool // inside a word
		quote byte
	)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case quote == '"':
			switch {
			case ch == '"':
				quote = 0
			case ch == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0:
				i++
				cur.WriteByte(line[i])
			case ch == '$' || ch == '`':
				return nil, fmt.Errorf("shell expansion (%c) is not supported in a probe", ch)
			default:
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
				in = true
			}
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case strings.IndexByte("$`|;&<>", ch) >= 0:
			return nil, fmt.Errorf("shell syntax (%c) is not supported in a probe", ch)
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// Expect is a compiled probe expectation.
type Expect struct {
	text string
	re   *regexp.Regexp
}

// CompileExpect compiles an expect string: a /regular expression/ or a substring. The empty
// string matches every reply.
func CompileExpect(s string) (*Expect, error) {
	if len(s) >= 2 && strings.HasPrefix(s, "/") && strings.HasSuffix(s, "/") {
		re, err := regexp.Compile(s[1 : len(s)-1])
		if err != nil {
			return nil, fmt.Errorf("%q is not a regular expression: %v", s, err)
		}
		return &Expect{text: s, re: re}, nil
	}
	return &Expect{text: s}, nil
}

// Match reports whether the reply meets the expectation.
func (e *Expect) Match(reply string) bool {
	if e.re != nil {
		return e.re.MatchString(reply)
	}
	return strings.Contains(reply, e.text)
}

func (e *Expect) String() string { return e.text }

// QueryVars are the variables a custom PromQL template may use. By says which label of
// Istio's metrics tells the canary from the stable: SelectBySubset or SelectByService.
type QueryVars struct {
	Namespace, Host, Service, Stable, Canary, Window, Rollout string
	By                                                        string
}

// The labels the built-in metrics select the canary by: a VirtualService's subsets are
// the pods' version label (destination_version); a Gateway API route's backends are two
// Services (destination_service_name). An empty By is SelectBySubset.
const (
	SelectBySubset  = "destination_version"
	SelectByService = "destination_service_name"
)

// checkQueryTemplate parses a custom query template and renders it with sample variables,
// so that a typo in a variable name fails validation rather than the first check.
func checkQueryTemplate(q string) error {
	t, err := template.New("query").Option("missingkey=error").Parse(q)
	if err != nil {
		return fmt.Errorf("not a valid template: %v", err)
	}
	if err := t.Execute(io.Discard, QueryVars{}); err != nil {
		return fmt.Errorf("not a valid template: %v", err)
	}
	return nil
}
