#!/bin/sh
# Runs inside the VM: the real agent serves a workload started by
# notify-launcher (no container runtime in the VM) on the patched kernel.
fail=0; pass=0
check() { if eval "$2"; then echo "ok - $1"; pass=$((pass+1)); else echo "not ok - $1"; fail=$((fail+1)); fi; }
ip link set lo up
mkdir -p /run/sa /srv
echo ORIGINAL > /srv/orig
echo REDIRECTED > /srv/alt
/bin/seccomp-agent --socket=/run/sa/agent.sock --policy=/etc/vm-policy.yaml \
  --decision_log=/run/sa/decisions.jsonl --hook_socket=none 2>/run/sa/agent.log &
i=0; while [ ! -S /run/sa/agent.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
/bin/notify-launcher --socket=/run/sa/agent.sock --id=vm-e2e --syscalls=openat,bind,write -- \
  /bin/sh -c 'cat /srv/orig > /run/sa/cat.out; echo "token secret-42 end" > /srv/out;
              httpd -p 0.0.0.0:80 -h /srv; sleep 0.5; netstat -ltn > /run/sa/netstat.out' 
echo "--- agent log"; cat /run/sa/agent.log
echo "--- decisions"; grep -v '"rule":"default"' /run/sa/decisions.jsonl
check "redirect_open: cat shows the redirected file" 'grep -q REDIRECTED /run/sa/cat.out'
check "rewrite_bind: the server listens on 127.0.0.1:8080" 'grep -q "127.0.0.1:8080" /run/sa/netstat.out && ! grep -q ":80 " /run/sa/netstat.out'
check "replace_write: the file holds the redacted line" 'grep -q "token ######### end" /srv/out && ! grep -q secret-42 /srv/out'
check "the probe found NOTIF_INJECT" 'grep -q "backend kernel" /run/sa/agent.log'
for r in redirect port-80-to-8080 redact; do
  check "decision log: rule $r went through the kernel backend" "grep \"\\\"rule\\\":\\\"$r\\\"\" /run/sa/decisions.jsonl | grep -q '\"backend\":\"kernel\"'"
done
kill %1 2>/dev/null
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
