module github.com/icpverify/icpverify/tests

go 1.26.0

require github.com/icpverify/icpverify/pkg v0.0.0

replace github.com/icpverify/icpverify/pkg => ../pkg
