package admin

// WithoutCredentials exposes withoutCredentials to the black-box tests.
var WithoutCredentials = withoutCredentials
