# SentencePiece module (owned by the tokenizer work): built as a separate shared object.
