package main

import "errors"

// tilesConfig is replaced by tiles.Config when the tiles engine lands.
type tilesConfig struct {
	Addr string `json:"addr,omitempty" env:"MERIDIAN_TILES_ADDR"`
}

func (c *tilesConfig) SetDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8081"
	}
}

func (c tilesConfig) Validate() error { return nil }

func (nd *node) tilesComponent() (component, error) {
	return component{}, errors.New("the tiles engine is not built into this binary yet")
}
