// Command bench is not a program: its package exists so that its test can
// compile the server's own jwt.go (a symbolic link to ../jwt.go, with
// strictjson.go and tokencache.go, which it uses, linked the same way) beside
// github.com/golang-jwt/jwt/v5, outside the server's module, whose go.mod
// keeps its two dependencies.
package main

func main() {}
