package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// iperf3: bulk throughput, one or more streams and client processes.

// iperf runs iperf3 through proxy p: clients processes at once, each
// with streams streams to its own iperf3 server. It retries a run that a
// server refused (one serves one test at a time and sometimes still
// finishes the previous one).
//
// Two processes are a case of their own because Debian 12's iperf3
// (3.12) runs all of a client's streams in one thread, and on loopback
// the sending thread also runs the TCP receive processing of the
// proxy's socket unless the proxy holds that socket at the moment, so
// that row measures the client as much as the proxy.
func (b *bench) iperf(p, clients, streams int) error {
	var err error
	for try := range 3 {
		if err = b.iperfOnce(p, clients, streams); err == nil {
			return nil
		}
		b.logf("%s iperf3 try %d: %v", proxyNames[p], try+1, err)
		time.Sleep(time.Second)
	}
	return err
}

func (b *bench) iperfOnce(p, clients, streams int) error {
	ports := []int{b.front[p].iperf, b.front[p].iperf2}[:clients]
	bps := make([]float64, clients)
	cpu, err := b.measureCPU(p, func() error {
		errs := make([]error, clients)
		var wg sync.WaitGroup
		for i, port := range ports {
			wg.Go(func() { bps[i], errs[i] = runIperf(port, streams) })
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	if err != nil {
		return err
	}
	var gbps float64
	for _, v := range bps {
		gbps += v / 1e9
	}
	name := fmt.Sprintf("iperf3 %d stream", clients*streams)
	if clients*streams > 1 {
		name += "s"
	}
	if clients > 1 {
		name += fmt.Sprintf(", %d processes", clients)
	}
	b.row(name+": throughput", "Gbit/s", true).add(p, gbps)
	b.row(name+": proxy CPU per GB", "ms", false).add(p, cpu/100*1000/(gbps/8))
	b.logf("%s %s: %.2f Gbit/s, CPU %.0f%%", proxyNames[p], name, gbps, cpu)
	return nil
}

// runIperf runs one iperf3 client to port and returns what its server
// received, in bits per second.
func runIperf(port, streams int) (float64, error) {
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	out, err := exec.Command("iperf3", "-c", "127.0.0.1", "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(int(iperfDur.Seconds())), "-P", strconv.Itoa(streams), "-J").Output()
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3: %v %v", err, jerr)
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}
