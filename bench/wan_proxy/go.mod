module stratalake/bench/wan_proxy

go 1.21
