// Command bench is not a program: its package exists so that its test can
// compile the server's own jwt.go and strictjson.go (symbolic links to the
// server's files, which build alone) beside github.com/golang-jwt/jwt/v5,
// outside the server's module, whose go.mod keeps its two dependencies.
package main

func main() {}
