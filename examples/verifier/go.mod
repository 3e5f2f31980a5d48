module jwtnotes.example/verifier

go 1.26
