-- The LDS gazetteer and road graph, in schema meridian_lds of a DATA
-- database (never the metadata database). Built by `meridian lds load`
-- (package ldsload); read by packages geocode and routing.
-- Extensions: postgis and pgrouting need a superuser (the cluster
-- provisioning creates them); pg_trgm, unaccent and btree_gin are trusted, so the
-- database owner creates them here.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE SCHEMA IF NOT EXISTS meridian_lds;

-- norm is the one text normalization of the geocoder, used both when
-- loading and when querying: lower case, accents off, punctuation to
-- spaces, common street abbreviations spelled out ("N Main St" and
-- "North Main Street" normalize alike; a leading "St" is "saint").
CREATE OR REPLACE FUNCTION meridian_lds.norm(t text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
SELECT btrim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
       regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
       regexp_replace(regexp_replace(
         ' ' || regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, t)), '[^[:alnum:]]+', ' ', 'g') || ' ',
         '^ st ', ' saint ', 'g'),
         ' st ', ' street ', 'g'),
         ' ave? ', ' avenue ', 'g'),
         ' rd ', ' road ', 'g'),
         ' dr ', ' drive ', 'g'),
         ' ln ', ' lane ', 'g'),
         ' blvd ', ' boulevard ', 'g'),
         ' ct ', ' court ', 'g'),
         ' hwy ', ' highway ', 'g'),
         ' pl ', ' place ', 'g'),
         ' (n) ', ' north ', 'g'),
         ' (s) ', ' south ', 'g'),
         ' (e) ', ' east ', 'g'),
         ' (w) ', ' west ', 'g'))
$fn$;

-- places: countries, states (admin-1), cities (GeoNames), with their
-- label point. rank orders kinds (country 1, state 2, city 3).
CREATE TABLE IF NOT EXISTS meridian_lds.places (
	id           bigserial PRIMARY KEY,
	kind         text NOT NULL,
	name         text NOT NULL,
	country_code text NOT NULL,
	state        text,
	population   bigint NOT NULL DEFAULT 0,
	rank         smallint NOT NULL,
	geom         geometry(Point, 4326) NOT NULL
);
-- place_names: every name a place is found by (its name, alternative and
-- translated names, ISO codes), normalized.
CREATE TABLE IF NOT EXISTS meridian_lds.place_names (
	place_id     bigint NOT NULL REFERENCES meridian_lds.places ON DELETE CASCADE,
	country_code text NOT NULL,
	norm         text NOT NULL
);
DROP FUNCTION IF EXISTS meridian_lds.find_places(text, text, int);
DROP FUNCTION IF EXISTS meridian_lds.find_addresses(text, text, text, int);
DROP FUNCTION IF EXISTS meridian_lds.find_streets(text, text, int);
-- areas: admin-0 and admin-1 polygons, for reverse geocoding (which
-- country and state a point is in; none: the sea).
CREATE TABLE IF NOT EXISTS meridian_lds.areas (
	id           bigserial PRIMARY KEY,
	kind         text NOT NULL,
	name         text NOT NULL,
	country_code text NOT NULL,
	geom         geometry(MultiPolygon, 4326) NOT NULL
);
-- area_parts: the areas cut into pieces of at most 128 vertices
-- (ST_Subdivide), so that "which state is this point in" tests a few
-- small polygons instead of a whole coastline.
CREATE TABLE IF NOT EXISTS meridian_lds.area_parts (
	area_id      bigint NOT NULL,
	kind         text NOT NULL,
	name         text NOT NULL,
	country_code text NOT NULL,
	geom         geometry(Polygon, 4326) NOT NULL
);
-- postcodes: GeoNames postal codes.
CREATE TABLE IF NOT EXISTS meridian_lds.postcodes (
	country_code text NOT NULL,
	code         text NOT NULL,
	code_norm    text NOT NULL,
	place        text,
	state        text,
	geom         geometry(Point, 4326) NOT NULL
);
-- addresses: OSM nodes and ways with addr:housenumber.
CREATE TABLE IF NOT EXISTS meridian_lds.addresses (
	id           bigserial PRIMARY KEY,
	region       text NOT NULL,
	housenumber  text NOT NULL,
	street       text NOT NULL,
	street_norm  text NOT NULL,
	city         text,
	postal_code  text,
	country_code text NOT NULL,
	geom         geometry(Point, 4326) NOT NULL
);
-- streets: named OSM highway ways.
CREATE TABLE IF NOT EXISTS meridian_lds.streets (
	id           bigserial PRIMARY KEY,
	region       text NOT NULL,
	name         text NOT NULL,
	norm         text NOT NULL,
	city         text,
	postal_code  text,
	country_code text NOT NULL,
	geom         geometry(LineString, 4326) NOT NULL
);
-- edges: the road graph, OSM ways split at every node shared by two
-- ways. Vertex ids are OSM node ids (unique across regions). Costs are
-- seconds; a negative cost means "not this way" (pgRouting's rule):
-- car_cost < 0 for roads cars may not use, car_reverse_cost < 0 against
-- a one-way; walk costs ignore one-ways and exclude motorways.
CREATE TABLE IF NOT EXISTS meridian_lds.edges (
	id               bigserial PRIMARY KEY,
	region           text NOT NULL,
	osm_id           bigint NOT NULL,
	source           bigint NOT NULL,
	target           bigint NOT NULL,
	highway          text NOT NULL,
	name             text,
	oneway           smallint NOT NULL,
	length_m         double precision NOT NULL,
	car_cost         double precision NOT NULL,
	car_reverse_cost double precision NOT NULL,
	walk_cost        double precision NOT NULL,
	x1 double precision NOT NULL, y1 double precision NOT NULL,
	x2 double precision NOT NULL, y2 double precision NOT NULL,
	geom             geometry(LineString, 4326) NOT NULL
);
-- vertices: the graph's vertices (OSM nodes) with their location.
CREATE TABLE IF NOT EXISTS meridian_lds.vertices (
	id     bigint PRIMARY KEY,
	region text NOT NULL,
	lon    double precision NOT NULL,
	lat    double precision NOT NULL
);
-- regions: what was loaded, from which file, and when.
CREATE TABLE IF NOT EXISTS meridian_lds.regions (
	name      text PRIMARY KEY,
	file      text NOT NULL,
	bbox      geometry(Polygon, 4326),
	loaded_at timestamptz NOT NULL DEFAULT now()
);
-- sources: which non-OSM inputs were loaded.
CREATE TABLE IF NOT EXISTS meridian_lds.sources (
	name      text PRIMARY KEY,
	file      text NOT NULL,
	rows      bigint NOT NULL,
	loaded_at timestamptz NOT NULL DEFAULT now()
);

