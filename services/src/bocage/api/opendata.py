"""Open-data exports of indicator values: CSV described by a Table Schema (frictionless).

``/api/v1/indicators/{id}.csv`` takes the same parameters as the JSON values and answers a
UTF-8, comma-separated file with a header row; ``/api/v1/indicators/{id}/schema.json`` is its
Table Schema, as schema.data.gouv.fr publishes them, so that re-users and data.gouv.fr's
validator know each column's type, unit and meaning.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final

from bocage.core.register import Register
from bocage.indicators import Indicator, IndicatorValue

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
COLUMNS: Final = (
    "indicator", "territory_code", "territory_name", "date", "value", "unit", "sensors", "label"
)


def to_csv(indicator: Indicator, values: list[IndicatorValue], register: Register) -> str:
    """The CSV text of ``values`` (one row per territory and day)."""
    names = {t.code: t.name for t in register.territories}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(COLUMNS)
    for v in values:
        writer.writerow((
            indicator.id, v.territory, names.get(v.territory, ""), v.date.isoformat(),
            repr(round(v.value, 6)), indicator.unit, v.sensors, v.label or "",
        ))
    return out.getvalue()


def table_schema(indicator: Indicator, base_url: str) -> dict[str, Any]:
    """The Table Schema of the CSV export of ``indicator``."""
    return {
        "$schema": "https://specs.frictionlessdata.io/schemas/table-schema.json",
        "name": f"bocage-{indicator.id.replace('_', '-')}",
        "title": f"{indicator.title} ({indicator.unit}) per territory and day",
        "description": indicator.definition,
        "path": f"{base_url.rstrip('/')}/api/v1/indicators/{indicator.id}/schema.json",
        "version": "1.0.0",
        "licenses": [{"name": "etalab-2.0", "title": "Licence Ouverte / Open Licence version 2.0",
                      "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence"}],
        "fields": [
            {"name": "indicator", "type": "string", "title": "Indicator id",
             "description": "Identifier of the indicator in the Bocage catalog",
             "constraints": {"required": True, "enum": [indicator.id]}},
            {"name": "territory_code", "type": "string", "title": "Territory code",
             "description": "INSEE COG code of a commune, or SIREN of a grouping (EPCI, union)",
             "constraints": {"required": True, "pattern": "^([0-9]{5}|2[AB][0-9]{3}|[0-9]{9})$"},
             "example": "35238"},
            {"name": "territory_name", "type": "string", "title": "Territory name",
             "constraints": {"required": False}},
            {"name": "date", "type": "date", "format": "%Y-%m-%d", "title": "Local day",
             "description": "Calendar day in the stack's time zone",
             "constraints": {"required": True}},
            {"name": "value", "type": "number", "title": indicator.title,
             "description": f"Value in {indicator.unit}; see the definition",
             "constraints": {"required": True}},
            {"name": "unit", "type": "string", "title": "Unit",
             "constraints": {"required": True, "enum": [indicator.unit]}},
            {"name": "sensors", "type": "integer", "title": "Sensors",
             "description": "Number of sensors behind the value",
             "constraints": {"required": True, "minimum": 0}},
            {"name": "label", "type": "string", "title": "Class",
             "description": "Name of the class of an index (e.g. ATMO), empty otherwise",
             "constraints": {"required": False,
                             **({"enum": list(indicator.labels)} if indicator.labels else {})}},
        ],
        "primaryKey": ["territory_code", "date"],
        "missingValues": [""],
    }


DCAT_CONTEXT: Final = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "hydra": "http://www.w3.org/ns/hydra/core#",
}
LICENSE: Final = "https://www.etalab.gouv.fr/licence-ouverte-open-licence"


def dcat_catalog(
    indicators: list[Indicator], register: Register, base_url: str, title: str, modified: str
) -> dict[str, Any]:
    """A DCAT catalogue (JSON-LD) of the open data: one dataset per indicator (CSV and JSON
    distributions, the CSV conforming to its Table Schema), the public sensor register, and the
    SensorThings API as a data service. data.gouv.fr harvests this form."""
    base = base_url.rstrip("/")
    publisher = {"@type": "foaf:Organization", "foaf:name": title}
    spatial = [t.code for t in register.territories]
    datasets: list[dict[str, Any]] = []
    for ind in indicators:
        url = f"{base}/api/v1/indicators/{ind.id}"
        datasets.append({
            "@id": url,
            "@type": "dcat:Dataset",
            "dct:identifier": f"bocage:{ind.id}",
            "dct:title": ind.title,
            "dct:description": ind.definition,
            "dct:publisher": publisher,
            "dct:license": LICENSE,
            "dct:accrualPeriodicity": "http://purl.org/cld/freq/daily",
            "dct:modified": {"@value": modified, "@type": "xsd:date"},
            "dct:spatial": spatial,
            "dcat:keyword": ["bocage", "indicateur territorial", ind.sensor_kind or "capteurs"],
            "dcat:distribution": [
                {
                    "@id": f"{url}.csv",
                    "@type": "dcat:Distribution",
                    "dct:title": f"{ind.title} (CSV)",
                    "dcat:downloadURL": f"{url}.csv",
                    "dcat:accessURL": f"{url}.csv",
                    "dcat:mediaType": "text/csv",
                    "dct:format": "CSV",
                    "dct:conformsTo": {"@id": f"{url}/schema.json"},
                    "dct:license": LICENSE,
                },
                {
                    "@id": url,
                    "@type": "dcat:Distribution",
                    "dct:title": f"{ind.title} (JSON API)",
                    "dcat:accessURL": url,
                    "dcat:mediaType": "application/json",
                    "dct:format": "JSON",
                    "dct:license": LICENSE,
                },
            ],
        })
    datasets.append({
        "@id": f"{base}/api/v1/sensors",
        "@type": "dcat:Dataset",
        "dct:identifier": "bocage:sensor-register",
        "dct:title": "Registre des capteurs / sensor register",
        "dct:description": (
            "Public register of the sensors in public space: purpose, data collected, personal"
            " data, legal basis, controller, retention."
        ),
        "dct:publisher": publisher,
        "dct:license": LICENSE,
        "dct:spatial": spatial,
        "dcat:distribution": [{
            "@id": f"{base}/api/v1/sensors",
            "@type": "dcat:Distribution",
            "dcat:accessURL": f"{base}/api/v1/sensors",
            "dcat:mediaType": "application/json",
            "dct:format": "JSON",
            "dct:license": LICENSE,
        }],
    })
    return {
        "@context": DCAT_CONTEXT,
        "@id": f"{base}/catalog.jsonld",
        "@type": ["dcat:Catalog", "hydra:Collection"],
        "dct:title": f"{title} — open data",
        "dct:description": "Territorial indicators and sensor register of the pooled stack.",
        "dct:publisher": publisher,
        "dct:license": LICENSE,
        "dct:modified": {"@value": modified, "@type": "xsd:date"},
        "dcat:dataset": datasets,
        "dcat:service": [{
            "@id": f"{base}/sta/v1.1",
            "@type": "dcat:DataService",
            "dct:title": "OGC SensorThings API 1.1",
            "dcat:endpointURL": f"{base}/sta/v1.1",
            "dct:conformsTo": {"@id": "http://www.opengis.net/doc/is/sensorthings/1.1"},
            "dcat:servesDataset": [{"@id": f"{base}/api/v1/sensors"}],
        }],
        "hydra:totalItems": len(datasets),
    }
