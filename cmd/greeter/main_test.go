package main

import (
	"testing"

	"google.golang.org/grpc/codes"
)

func TestParseCode(t *testing.T) {
	tests := []struct {
		in   string
		want codes.Code
		ok   bool
	}{
		{"UNAVAILABLE", codes.Unavailable, true},
		{"unavailable", codes.Unavailable, true},
		{"DEADLINE_EXCEEDED", codes.DeadlineExceeded, true},
		{"14", codes.Unavailable, true},
		{"0", codes.OK, true},
		{"17", 0, false},
		{"NOPE", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCode(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseCode(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-error-rate", "2"},
		{"-error-code", "BOGUS"},
		{"-tls-cert", "/nonexistent.pem", "-tls-key", "/nonexistent.key"},
		{"-listen", "not an address"},
	} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
