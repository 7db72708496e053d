package main

import (
	"fmt"
	"os"
	"strings"
)

// readSecret reads a secret file named by the config field field. An empty path or an empty
// file (the deploy base ships the Secret empty) means no secret. The secret itself never
// appears in an error.
func readSecret(field, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return nil, nil
	}
	return []byte(s), nil
}
