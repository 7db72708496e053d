package server

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves the Go runtime's profiles (net/http/pprof) at /debug/pprof/ to a
// caller with an operator's token: a profile shows what the daemon is doing and costs CPU
// to take, so it is never public. Profile while a storm runs:
//
//	go tool pprof -http :0 'http://HOST/debug/pprof/profile?seconds=30' (with the header
//	Authorization: Bearer TOKEN, e.g. through curl -H ... -o cpu.pprof)
func (s *Server) pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, msg, _ := s.authorize(r); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="canaryd"`)
			}
			s.log.Warn("profile refused", "path", r.URL.Path, "status", status, "remote", r.RemoteAddr)
			writeError(w, status, msg)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
