package server

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestBadgeContrast: white text on every badge colour of the page meets WCAG AA for normal
// text (4.5:1).
func TestBadgeContrast(t *testing.T) {
	css, err := os.ReadFile("templates/layout.html")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--(pass|fail|inconclusive|error):(#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	rules := regexp.MustCompile(`\.(phase-\w+|badge(?:\.\w+)?) \{[^}]*background:(#[0-9a-f]{6}|var\(--(\w+)\))`).FindAllStringSubmatch(string(css), -1)
	if len(rules) < 12 {
		t.Fatalf("found %d badge colours in layout.html, want every phase and result", len(rules))
	}
	for _, m := range rules {
		color := m[2]
		if m[3] != "" {
			color = vars[m[3]]
		}
		if r := contrast(color, "#ffffff"); r < 4.5 {
			t.Errorf(".%s: white on %s has contrast %.2f:1, want at least 4.5:1", m[1], color, r)
		}
	}
}

// contrast is the WCAG 2 contrast ratio of two #rrggbb colours.
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

func luminance(hex string) float64 {
	var c [3]float64
	for i := range c {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		s := float64(v) / 255
		if s <= 0.03928 {
			c[i] = s / 12.92
		} else {
			c[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
}

// TestTextContrast: coloured text on the white card (the chart's run and mark labels, the
// "cannot run" line) meets WCAG AA for normal text (4.5:1).
func TestTextContrast(t *testing.T) {
	css, err := os.ReadFile("templates/layout.html")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--(\w+):(#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	rules := regexp.MustCompile(`(svg\.chart \.(?:run|mark)[\w.]* text|\.msg\.blocked|svg\.chart text) \{[^}]*?\b(?:fill|color):(#[0-9a-f]{6}|var\(--(\w+)\))`).FindAllStringSubmatch(string(css), -1)
	if len(rules) < 4 {
		t.Fatalf("found %d label colours in layout.html, want the chart's text, run and mark labels and the blocked line", len(rules))
	}
	for _, m := range rules {
		color := m[2]
		if m[3] != "" {
			color = vars[m[3]]
		}
		if r := contrast(color, "#ffffff"); r < 4.5 {
			t.Errorf("%s: %s on white has contrast %.2f:1, want at least 4.5:1", m[1], color, r)
		}
	}
}
