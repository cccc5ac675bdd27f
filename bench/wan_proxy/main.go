// wan_proxy puts a wide-area network between a client and a server on this
// machine, for benchmarks (bench/s3_bench.py --wan): every TCP connection it
// accepts is forwarded to -target with -rtt of round-trip delay (half each
// way) and at most -mbps megabytes per second in each direction, as a single
// connection to a remote object store gets. The address it listens on is the
// first line it prints.
//
//	go run ./bench/wan_proxy -target 127.0.0.1:9000 -rtt 20ms -mbps 40
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"
)

type chunk struct {
	data []byte
	due  time.Time
}

var logRequests = flag.Bool("log", false, "print the request line of each HTTP request to stderr")

// pipe copies src to dst, delivering each chunk `delay` after it was read and
// no faster than `rate` bytes per second.
func pipe(dst, src net.Conn, delay time.Duration, rate float64, requests bool) {
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				if requests && *logRequests {
					logRequestLine(buf[:n])
				}
				ch <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	var sent float64
	start := time.Time{}
	for c := range ch {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if start.IsZero() {
			start = time.Now()
		}
		if rate > 0 {
			// Not ahead of the rate since this connection started sending.
			ahead := time.Duration((sent+float64(len(c.data)))/rate*float64(time.Second)) - time.Since(start)
			if ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if _, err := dst.Write(c.data); err != nil {
			break
		}
		sent += float64(len(c.data))
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	io.Copy(io.Discard, src)
}

// Prints the chunk's first line when it looks like an HTTP request line.
func logRequestLine(b []byte) {
	for _, m := range []string{"GET ", "PUT ", "POST ", "HEAD ", "DELETE "} {
		if len(b) > len(m) && string(b[:len(m)]) == m {
			end := 0
			for end < len(b) && b[end] != '\r' && b[end] != '\n' && end < 200 {
				end++
			}
			fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05.000"), b[:end])
			return
		}
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "host:port to forward to")
	rtt := flag.Duration("rtt", 20*time.Millisecond, "round-trip delay added")
	mbps := flag.Float64("mbps", 40, "megabytes per second per connection and direction (0: no cap)")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "wan_proxy: -target host:port is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	rate := *mbps * 1e6
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func(c net.Conn) {
			s, err := net.Dial("tcp", *target)
			if err != nil {
				c.Close()
				return
			}
			done := make(chan struct{}, 2)
			go func() { pipe(s, c, *rtt/2, rate, true); done <- struct{}{} }()
			go func() { pipe(c, s, *rtt/2, rate, false); done <- struct{}{} }()
			<-done
			<-done
			c.Close()
			s.Close()
		}(c)
	}
}
