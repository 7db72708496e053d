package rollout

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// Egress is the daemon's rule for what specs may reach: which probe and Prometheus targets
// they may name, and which local files (CA bundles, keys, protosets, proto files) they may
// make canaryd read. Specs live in Git and anyone who can push chooses them; the daemon's
// configuration is the operator's.
type Egress struct {
	// Allow lists CIDRs ("10.0.0.0/8", "127.0.0.1") and host patterns ("*.svc.cluster.local",
	// "prometheus.istio-system"). Empty means any target that is not denied.
	Allow []string `yaml:"allow"`
	// Deny lists more CIDRs and host patterns to refuse, before Allow.
	Deny []string `yaml:"deny"`
	// Files lists absolute directories the files a spec names must lie in. Empty means a
	// spec may name no local file.
	Files []string `yaml:"files"`
}

// DefaultDenied are refused whatever Allow says, unless Allow names a prefix within them:
// link-local addresses and the clouds' metadata services.
var DefaultDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"), // IPv4 link-local, 169.254.169.254 among them
	netip.MustParsePrefix("fe80::/10"),      // IPv6 link-local
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// deniedNames are metadata service host names, refused like DefaultDenied.
var deniedNames = []string{"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}

// EgressPolicy is a compiled Egress. Its zero value is not usable; see CompileEgress.
type EgressPolicy struct {
	allowNets, denyNets   []netip.Prefix
	allowHosts, denyHosts []string
	files                 []string
}

// CompileEgress checks e and returns its policy; each bad entry is reported with its field.
func CompileEgress(e Egress) (*EgressPolicy, error) {
	p := &EgressPolicy{}
	var errs []string
	add := func(field string, entries []string, nets *[]netip.Prefix, hosts *[]string) {
		for i, s := range entries {
			if pfx, err := parsePrefix(s); err == nil {
				*nets = append(*nets, pfx)
			} else if validHostPattern(s) {
				*hosts = append(*hosts, strings.ToLower(s))
			} else {
				errs = append(errs, fmt.Sprintf("egress.%s[%d]: %q is neither a CIDR, an IP nor a host pattern such as *.svc.cluster.local", field, i, s))
			}
		}
	}
	add("allow", e.Allow, &p.allowNets, &p.allowHosts)
	add("deny", e.Deny, &p.denyNets, &p.denyHosts)
	for i, d := range e.Files {
		if !path.IsAbs(d) {
			errs = append(errs, fmt.Sprintf("egress.files[%d]: %q must be an absolute directory", i, d))
			continue
		}
		p.files = append(p.files, path.Clean(d))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return p, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func validHostPattern(s string) bool {
	if s == "*" {
		return true
	}
	s = strings.TrimPrefix(s, "*.")
	return s != "" && !strings.ContainsAny(s, "*/:[] ") && !strings.HasPrefix(s, ".") && !strings.HasSuffix(s, ".")
}

func matchHost(pattern, host string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return host == pattern
}

// Target says why the policy refuses host (a name or an IP literal), or returns "".
func (p *EgressPolicy) Target(host string) string {
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i] // a zone: fe80::1%eth0
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return p.address(a.Unmap())
	}
	for _, n := range deniedNames {
		if host == n {
			return fmt.Sprintf("%s is a cloud metadata service", host)
		}
	}
	for _, h := range p.denyHosts {
		if matchHost(h, host) {
			return fmt.Sprintf("%s matches egress.deny %q", host, h)
		}
	}
	if len(p.allowNets)+len(p.allowHosts) == 0 {
		return ""
	}
	for _, h := range p.allowHosts {
		if matchHost(h, host) {
			return ""
		}
	}
	return fmt.Sprintf("%s matches no host pattern of egress.allow", host)
}

func (p *EgressPolicy) address(a netip.Addr) string {
	if why := p.Dialed(a); why != "" {
		return why
	}
	if len(p.allowNets)+len(p.allowHosts) == 0 {
		return ""
	}
	for _, n := range p.allowNets {
		if n.Contains(a) {
			return ""
		}
	}
	return fmt.Sprintf("%s is in no CIDR of egress.allow", a)
}

// Dialed says why the policy refuses a connection to a, the address a target's host name
// resolved to when it was dialled, or returns "": a link-local or cloud-metadata address
// (unless egress.allow names its range) or one in egress.deny. A name that egress.allow
// admits may resolve to any other address.
func (p *EgressPolicy) Dialed(a netip.Addr) string {
	a = a.Unmap()
	for _, d := range DefaultDenied {
		if !d.Contains(a) {
			continue
		}
		for _, n := range p.allowNets {
			if d.Contains(n.Addr()) && n.Contains(a) {
				return "" // the operator named this link-local range on purpose
			}
		}
		return fmt.Sprintf("%s is a link-local or cloud-metadata address (refused unless egress.allow names it)", a)
	}
	for _, n := range p.denyNets {
		if n.Contains(a) {
			return fmt.Sprintf("%s is in egress.deny %s", a, n)
		}
	}
	return ""
}

// File says why the policy refuses a local file a spec names, or returns "".
func (p *EgressPolicy) File(name string) string {
	if !path.IsAbs(name) {
		return fmt.Sprintf("%q is relative; name an absolute path in a directory of egress.files", name)
	}
	clean := path.Clean(name)
	for _, d := range p.files {
		if clean == d || strings.HasPrefix(clean, strings.TrimSuffix(d, "/")+"/") {
			return ""
		}
	}
	if len(p.files) == 0 {
		return fmt.Sprintf("%q: specs may read no local file unless egress.files allows its directory", name)
	}
	return fmt.Sprintf("%q is in no directory of egress.files", name)
}

// Check returns a positioned problem for every target and file of doc the policy refuses.
func (p *EgressPolicy) Check(doc *Document) Problems {
	var ps Problems
	bad := func(field, format string, args ...any) {
		at := doc.posAt(field)
		ps = append(ps, Problem{File: doc.File, Line: at.line, Col: at.col, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if a := doc.Spec.Analysis; a != nil && a.Prometheus.Address != "" {
		if u, err := url.Parse(a.Prometheus.Address); err == nil {
			if why := p.Target(u.Hostname()); why != "" {
				bad("spec.analysis.prometheus.address", "egress refused: %s", why)
			}
		}
	}
	if pr := doc.Spec.Probe; pr != nil {
		if pr.Command != nil {
			p.checkProbe(pr.Command, func(format string, args ...any) { bad("spec.probe.grpcurl", format, args...) })
		}
		for _, a := range [...]struct{ field, addr string }{
			{"spec.probe.canaryAddress", pr.CanaryAddress}, {"spec.probe.stableAddress", pr.StableAddress},
		} {
			if h, _, err := net.SplitHostPort(a.addr); a.addr != "" && err == nil {
				if why := p.Target(h); why != "" {
					bad(a.field, "egress refused: %s", why)
				}
			}
		}
	}
	return ps
}

func (p *EgressPolicy) checkProbe(c *GRPCurlCommand, bad func(string, ...any)) {
	host := c.Address
	if h, _, err := net.SplitHostPort(c.Address); err == nil {
		host = h
	}
	if why := p.Target(host); why != "" {
		bad("egress refused: %s", why)
	}
	files := append([]string{c.CACert, c.Cert, c.Key}, c.Protosets...)
	files = append(files, c.ImportPaths...)
	for _, f := range files {
		if f == "" {
			continue
		}
		if why := p.File(f); why != "" {
			bad("file refused: %s", why)
		}
	}
	for _, f := range c.Protos {
		if path.IsAbs(f) {
			if why := p.File(f); why != "" {
				bad("file refused: %s", why)
			}
		} else if len(c.ImportPaths) == 0 || strings.HasPrefix(path.Clean(f), "..") {
			bad("file refused: -proto %q must lie below an -import-path in egress.files", f)
		}
	}
}
